"""Text to token ids with the model's own tokenizer, through the tokenizer libraries
ExecuTorch already depends on (``pytorch_tokenizers``: a Hugging Face ``tokenizer.json``
via ``tokenizers``, a SentencePiece ``tokenizer.model``, a tiktoken file).

Used by ``pt2e-calibrate`` (calibration on a text file, as export_llama's
``--calibration_data``) and by ``driver generate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from pteflow.ir.errors import ModelError

#: files a model directory may hold, tried in this order
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer.bin")


@attrs.frozen
class TextTokenizer:
    """``encode`` / ``decode`` over one of pytorch_tokenizers' tokenizers.

    A Hugging Face tokenizer adds what its own post-processor says (e.g. Llama 3's
    ``<|begin_of_text|>``), as ``transformers``' tokenizer does; the others get a BOS, as
    ExecuTorch's runner gives them.
    """

    path: Path
    inner: Any
    is_hf: bool

    def encode(self, text: str) -> list[int]:
        if self.is_hf:
            return list(self.inner.model.encode(text).ids)
        return list(self.inner.encode(text, bos=True, eos=False))

    def decode(self, ids: list[int]) -> str:
        return str(self.inner.decode(ids))

    @property
    def eos_ids(self) -> list[int]:
        eos = getattr(self.inner, "eos_id", None)
        return [eos] if isinstance(eos, int) and eos >= 0 else []


def tokenizer_file(path: str | Path) -> Path:
    """The tokenizer file ``path`` names: the file itself, or the first of
    ``TOKENIZER_FILES`` in a directory.

    Raises:
        ModelError: no such file or directory, or a directory with no tokenizer.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        for name in TOKENIZER_FILES:
            if (p / name).is_file():
                return p / name
        raise ModelError(
            f"tokenizer {path}: the directory holds none of {', '.join(TOKENIZER_FILES)}"
        )
    if not p.is_file():
        raise ModelError(f"tokenizer {path}: no such file or directory")
    return p


def load_tokenizer(path: str | Path) -> TextTokenizer:
    """The tokenizer at ``path`` (a file, or a model directory holding one).

    Raises:
        ModelError: no tokenizer there, or one the libraries cannot read.
    """
    import contextlib
    import io

    file = tokenizer_file(path)
    try:
        if file.suffix == ".json":
            from pytorch_tokenizers import HuggingFaceTokenizer

            return TextTokenizer(file, HuggingFaceTokenizer(str(file)), True)
        from pytorch_tokenizers import get_tokenizer

        with contextlib.redirect_stdout(io.StringIO()):  # it prints which one it picked
            return TextTokenizer(file, get_tokenizer(str(file)), False)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"tokenizer {file}: cannot read it ({first})") from None


def calibration_sequences(
    text_file: str | Path, tokenizer: str | Path, *, seq_len: int, limit: int | None
) -> list[list[int]]:
    """The token ids of a calibration text: one sequence per non-empty paragraph (blank-line
    separated), each cut to ``seq_len`` tokens, at most ``limit`` of them.

    Raises:
        ModelError: the text file cannot be read or holds no text; a bad tokenizer.
    """
    try:
        text = Path(text_file).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(
            f"calibration text {text_file}: cannot read it ({getattr(e, 'strerror', None) or e})"
        ) from None
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    if not paragraphs:
        raise ModelError(f"calibration text {text_file}: holds no text")
    tok = load_tokenizer(tokenizer)
    out = []
    for paragraph in paragraphs[:limit] if limit else paragraphs:
        ids = tok.encode(paragraph)[:seq_len]
        if ids:
            out.append(ids)
    return out
