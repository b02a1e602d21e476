from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError

from ..base import Pass, PassContext, PassInfo, PassResult, option_error, positive

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram


def read_token_ids(path: str) -> list[int]:
    """The token ids in a prompt file: a JSON list of ints, or whitespace-separated ints.

    Raises:
        ValueError: the file cannot be read, is malformed, or holds no ids
            (the message says which, for the caller to prefix).
    """
    import json

    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {path!r}: {getattr(e, 'strerror', None) or e}") from None
    text = text.strip()
    what = "a JSON list of ints or whitespace-separated ints"
    if text.startswith(("[", "{", '"')):
        try:
            ids = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{path!r} is not valid JSON ({e.msg} at line {e.lineno}); expected {what}"
            ) from None
        if not isinstance(ids, list):
            raise ValueError(f"{path!r} holds a {type(ids).__name__}; expected {what}")
        for i, v in enumerate(ids):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"{path!r}: item {i} is {v!r}, not an int; expected {what}")
    else:
        ids = []
        for i, word in enumerate(text.split()):
            try:
                ids.append(int(word))
            except ValueError:
                raise ValueError(
                    f"{path!r}: word {i} is {word[:20]!r}, not an int; expected {what}"
                ) from None
    if not ids:
        raise ValueError(f"{path!r} holds no token ids; expected {what}")
    negative = [v for v in ids if v < 0]
    if negative:
        raise ValueError(f"{path!r}: token id {negative[0]} is negative")
    return ids


def _prompt_file(
    instance: Pt2eCalibratePass, attribute: attrs.Attribute, value: str | None
) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise option_error(
            instance.info.name,
            attribute.name,
            f"must be a path to a file of token ids, got {value!r}",
        )
    try:
        read_token_ids(value)
    except ValueError as e:
        raise option_error(instance.info.name, attribute.name, str(e)) from None


@attrs.frozen
class Pt2eCalibratePass(Pass):
    """Run calibration data through the pt2e observers.

    Requires: pt2e.observed.
    Provides: pt2e.calibrated.

    With no option, every method is fed its example inputs once, as
    ``LLMEdgeManager.pt2e_quantize`` does without calibration data. A KV-cache
    LLM method (inputs ``tokens, {'input_pos': ...}``) given ``prompt_file``
    (tokenizer-free: a JSON list of ints, or whitespace-separated ints) or
    ``samples`` (that many random token ids drawn with ``seed``) is fed those
    tokens one at a time at positions 0, 1, ..., as
    ``LLMEdgeManager.pt2e_calibrate`` does. Any other method given
    ``samples`` is fed its example inputs, then ``samples - 1`` seeded
    variants (float inputs redrawn with the same mean and spread, integer
    inputs between the example's least and greatest value). The KV
    cache is a private copy during calibration: the program's initial state
    is unchanged.

    ``text_file`` with ``tokenizer`` (a tokenizer file or a model directory) calibrates
    a KV-cache LLM on text, as export_llama's ``--calibration_data`` does: each
    paragraph (blank-line separated) is tokenized with the model's tokenizer, cut to
    ``seq_len`` tokens (default: the model's maximum sequence length) and fed from
    position 0; ``limit`` caps the number of paragraphs.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="pt2e-calibrate",
        level_in=Level.ATEN,
        requires={facts.PT2E_OBSERVED},
        provides={facts.PT2E_CALIBRATED},
    )
    samples: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive))
    prompt_file: str | None = attrs.field(default=None, validator=_prompt_file)
    seed: int = 0
    text_file: str | None = None
    tokenizer: str | None = None
    seq_len: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive))
    limit: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive))

    def cache_inputs(self, ctx: PassContext) -> Any:
        """The contents of the files read (the options hold only their paths)."""
        import hashlib

        from .text import tokenizer_file

        files = [self.prompt_file, self.text_file]
        if self.tokenizer:
            try:
                files.append(str(tokenizer_file(self.tokenizer)))
            except ModelError:
                files.append(self.tokenizer)
        out = []
        for f in files:
            try:
                out.append(hashlib.sha256(Path(f).read_bytes()).hexdigest() if f else None)
            except OSError:
                out.append(f"unreadable:{f}")
        return tuple(out)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel

        from . import pt2e

        prompt = None
        if self.prompt_file is not None:
            try:
                prompt = read_token_ids(self.prompt_file)
            except ValueError as e:
                raise option_error(self.name, "prompt_file", str(e)) from None
        texts = self._text_sequences(program) if self.text_file is not None else None
        calibrated = {}
        for method, ep in program.exported_programs().items():
            if method in program.metadata.get(pt2e.UNQUANTIZED, ()):
                ctx.log(f"{method}: left unquantized by pt2e-prepare; nothing to calibrate")
                calibrated[method] = ep
                continue
            if not pt2e.observer_nodes(ep.graph_module):
                raise ModelError(
                    f"pt2e-calibrate: method {method!r} has no pt2e observers; "
                    "run pt2e-prepare first"
                )
            ep = pt2e.with_graph_module(
                ep, pt2e.copy_graph_module(ep.graph_module, copy_observers=True)
            )
            inputs = tuple(program.example_inputs[method])
            module = pt2e.calibration_module(ep)
            with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
                if texts is not None:
                    if not _is_kv_llm(inputs):
                        raise ModelError(
                            f"pt2e-calibrate: text calibration feeds a KV-cache LLM, but "
                            f"method {method!r} takes {_describe(inputs)}"
                        )
                    for ids in texts:
                        _check_ids(program, method, ep, ids, self.text_file)
                        _feed_tokens(module, inputs, ids, method, ep)
                    n = sum(len(t) for t in texts)
                    ctx.log(f"{method}: calibrated on {len(texts)} text sequence(s), {n} tokens")
                elif prompt is None and self.samples is None:
                    module(*inputs)
                    ctx.log(f"{method}: calibrated on the example inputs")
                elif _is_kv_llm(inputs):
                    ids = prompt if prompt is not None else self._random_ids(program, method, ep)
                    _check_ids(program, method, ep, ids, self.prompt_file)
                    _feed_tokens(module, inputs, ids, method, ep)
                    ctx.log(f"{method}: calibrated on {len(ids)} token(s)")
                elif prompt is not None:
                    raise ModelError(
                        f"pt2e-calibrate: a prompt file feeds a KV-cache LLM (inputs "
                        f"tokens, {{'input_pos': ...}}), but method {method!r} takes "
                        f"{_describe(inputs)}; calibrate it with samples instead"
                    )
                else:
                    for sample in _variants(inputs, self.samples or 1, self.seed):
                        module(*sample)
                    ctx.log(f"{method}: calibrated on {self.samples} sample(s)")
            calibrated[method] = ep
        return PassResult(program.evolve(artifact=calibrated), True)

    def _text_sequences(self, program: Program) -> list[list[int]]:
        from .text import calibration_sequences

        assert self.text_file is not None
        if not self.tokenizer:  # checked here: the pair is set one option at a time
            raise option_error(
                self.name,
                "tokenizer",
                "is needed with text_file (the model's tokenizer file or directory; "
                "driver run takes it from --hf or --tokenizer)",
            )
        if self.prompt_file is not None:
            raise option_error(self.name, "text_file", "give text_file or prompt_file, not both")
        seq_len = self.seq_len or _max_len(program) or 128
        return calibration_sequences(
            self.text_file, self.tokenizer, seq_len=seq_len, limit=self.limit
        )

    def _random_ids(self, program: Program, method: str, ep: ExportedProgram) -> list[int]:
        import torch

        vocab = _vocab_size(program, method, ep)
        generator = torch.Generator().manual_seed(self.seed)
        return torch.randint(0, vocab, (self.samples or 1,), generator=generator).tolist()


# --------------------------------------------------------------------------- helpers


def _is_kv_llm(inputs: tuple[Any, ...]) -> bool:
    import torch

    return (
        len(inputs) == 2
        and isinstance(inputs[0], torch.Tensor)
        and not inputs[0].is_floating_point()
        and isinstance(inputs[1], dict)
        and "input_pos" in inputs[1]
    )


def _describe(inputs: tuple[Any, ...]) -> str:
    from pteflow.ir.evaluate import flat_tensors

    shapes = [f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)}" for t in flat_tensors(inputs)]
    return f"({', '.join(shapes)})"


def _vocab_size(program: Program, method: str, ep: ExportedProgram) -> int:
    """``metadata['vocab_size']``, else the row count of the graph's embedding table."""
    from pteflow.ir.facts import op_name

    vocab = program.metadata.get("vocab_size", program.metadata.get("_vocab_size"))
    if isinstance(vocab, int) and vocab > 0:
        return vocab
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        name = op_name(node.target)
        if name.startswith(("aten.embedding.", "quantized_decomposed.embedding_")):
            val = node.args[0].meta.get("val") if hasattr(node.args[0], "meta") else None
            if val is not None and isinstance(val.shape[0], int):
                return val.shape[0]
    raise ModelError(
        f"pt2e-calibrate: cannot tell the vocabulary size of method {method!r} "
        "(no metadata 'vocab_size' and no embedding op); set the metadata or "
        "give a prompt_file"
    )


def _max_len(program: Program) -> int | None:
    for key in ("max_context_len", "max_seq_len", "_max_context_len", "_max_seq_len"):
        value = program.metadata.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _check_ids(
    program: Program, method: str, ep: ExportedProgram, ids: list[int], prompt_file: str | None
) -> None:
    source = f"file {prompt_file!r}" if prompt_file else "samples"
    limit = _max_len(program)
    if limit is not None and len(ids) > limit:
        raise ModelError(
            f"pt2e-calibrate: {source} gives {len(ids)} tokens, more than the "
            f"model's maximum sequence length {limit}; calibrate on fewer tokens"
        )
    if prompt_file:
        vocab = _vocab_size(program, method, ep)
        bad = [v for v in ids if v >= vocab]
        if bad:
            raise ModelError(
                f"pt2e-calibrate: {source} holds token id {bad[0]}, outside the "
                f"vocabulary of method {method!r} (size {vocab})"
            )


def _feed_tokens(
    module: torch.nn.Module,
    inputs: tuple[Any, ...],
    ids: list[int],
    method: str,
    ep: ExportedProgram,
) -> None:
    """Feed ``ids`` one at a time with their positions, as builder.pt2e_calibrate does."""
    import torch

    tokens, options = inputs
    pos_dtype = options["input_pos"].dtype
    first = next(
        n for n in ep.graph.find_nodes(op="placeholder") if n.name in ep.graph_signature.user_inputs
    )
    length = first.meta["val"].shape[-1] if "val" in first.meta else None
    if isinstance(length, int) and length != 1:
        raise ModelError(
            f"pt2e-calibrate: method {method!r} takes exactly {length} tokens per "
            "call, but calibration feeds one token at a time; export it with a "
            "dynamic token dimension (as export_llama does) or with one token"
        )
    for pos, token in enumerate(ids):
        module(
            torch.full((1, 1), token, dtype=tokens.dtype),
            {"input_pos": torch.tensor([pos], dtype=pos_dtype)},
        )


def _variants(inputs: tuple[Any, ...], samples: int, seed: int) -> list[tuple[Any, ...]]:
    """The example inputs, then ``samples - 1`` seeded redraws of their tensors."""
    import torch
    from torch.utils._pytree import tree_map

    generator = torch.Generator().manual_seed(seed)

    def redraw(x: Any) -> Any:
        if not isinstance(x, torch.Tensor) or x.numel() < 2 or x.dtype == torch.bool:
            return x
        if x.is_floating_point():
            noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
            return (noise * x.float().std() + x.float().mean()).to(x.dtype)
        low, high = int(x.min()), int(x.max())
        return torch.randint(low, high + 1, x.shape, generator=generator, dtype=x.dtype)

    return [inputs] + [tree_map(redraw, inputs) for _ in range(samples - 1)]
