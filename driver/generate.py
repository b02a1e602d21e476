"""Run a KV-cache LLM ``.pte`` on a prompt in ``executorch.runtime`` (``driver generate``).

What the ``.pte`` says about itself decides how it is driven, as in ExecuTorch's LLM
runner: ``use_kv_cache`` (required), ``enable_dynamic_shape`` (the prompt goes in one
call of up to ``get_max_seq_len - 1`` tokens, else one token per call),
``get_max_context_len`` (where generation must stop) and ``get_eos_ids`` (else the
tokenizer's EOS). Greedy by default; ``temperature`` > 0 samples, with ``top_p``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir.errors import ModelError, OptionError


@attrs.frozen
class Generation:
    """What ``generate`` produced: the prompt's ids, the new ids (the EOS that stopped it
    included, as transformers' ``generate`` returns it), their text (without the EOS),
    why it stopped (``"eos"``, ``"max_new_tokens"``, ``"context"``) and the timings."""

    prompt_ids: list[int]
    new_ids: list[int]
    text: str
    stopped: str
    prefill_s: float
    decode_s: float

    @property
    def prefill_tps(self) -> float:
        return len(self.prompt_ids) / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        n = len(self.new_ids) - 1  # the first new token comes out of the prefill
        return n / self.decode_s if n > 0 and self.decode_s > 0 else 0.0

    def stats_line(self) -> str:
        return (
            f"prefill: {len(self.prompt_ids)} tokens, {self.prefill_tps:.1f} tok/s; "
            f"decode: {len(self.new_ids)} tokens, {self.decode_tps:.1f} tok/s; "
            f"stopped: {self.stopped}"
        )


def generate(
    pte: str | Path,
    tokenizer: str | Path,
    prompt: str,
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    on_text: Callable[[str], None] | None = None,
) -> Generation:
    """Generate up to ``max_new_tokens`` tokens after ``prompt`` with the ``.pte``.

    ``on_text`` receives the text as it grows (the newly decoded part each time).

    Raises:
        OptionError: a bad count, temperature or top_p.
        ModelError: a ``.pte`` that does not load, has no KV cache or no ``forward``; a
            prompt that is empty after tokenizing or does not fit the context.
    """
    import torch

    from pteflow.passes.quantize.text import load_tokenizer

    from .pte_metadata import read_pte_metadata

    if max_new_tokens < 1:
        raise OptionError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if temperature < 0:
        raise OptionError(f"--temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise OptionError(f"--top-p must be in (0, 1], got {top_p}")
    tok = load_tokenizer(tokenizer)
    program = _load(pte)
    meta = read_pte_metadata(pte, program)
    if not meta.get("use_kv_cache", False):
        raise ModelError(
            f"{pte}: no use_kv_cache=True in its metadata; driver generate runs KV-cache "
            "LLMs (as compiled from --hf, --params or the tiny Llama)"
        )
    if "forward" not in program.method_names:
        raise ModelError(f"{pte}: has no 'forward' method")
    max_seq = int(meta.get("get_max_seq_len", 128))
    context = int(meta.get("get_max_context_len", max_seq))
    eos = meta.get("get_eos_ids", tok.eos_ids)
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    prompt_ids = tok.encode(prompt)
    if not prompt_ids:
        raise ModelError("--prompt: the tokenizer makes no tokens of it")
    if len(prompt_ids) >= context:
        raise ModelError(
            f"--prompt: {len(prompt_ids)} tokens leave no room in the .pte's context of "
            f"{context} tokens"
        )
    forward = program.load_method("forward")
    chunk = max_seq - 1 if meta.get("enable_dynamic_shape", False) else 1
    generator = torch.Generator().manual_seed(seed)

    def step(ids: list[int], pos: int) -> torch.Tensor:
        out = forward.execute(
            [torch.tensor([ids], dtype=torch.long), torch.tensor([pos], dtype=torch.long)]
        )[0]
        return out.reshape(-1, out.shape[-1])[-1]

    t0 = time.perf_counter()
    pos = 0
    logits = None
    while pos < len(prompt_ids):
        part = prompt_ids[pos : pos + chunk]
        logits = step(part, pos)
        pos += len(part)
    assert logits is not None
    new: list[int] = []
    token = _pick(logits, temperature, top_p, generator)
    prefill_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    shown = ""
    stopped = "max_new_tokens"
    while True:
        new.append(token)
        if token in eos_ids:
            stopped = "eos"
            break
        if on_text is not None:
            text = tok.decode(new)
            if text.startswith(shown) and len(text) > len(shown):
                on_text(text[len(shown) :])
                shown = text
        if len(new) >= max_new_tokens:
            break
        if pos >= context:
            stopped = "context"
            break
        logits = step([token], pos)
        pos += 1
        token = _pick(logits, temperature, top_p, generator)
    decode_s = time.perf_counter() - t1
    body = new[:-1] if stopped == "eos" else new
    return Generation(prompt_ids, new, tok.decode(body), stopped, prefill_s, decode_s)


def _load(pte: str | Path) -> Any:
    from executorch.runtime import Runtime

    from pteflow.ir.runnable import load_kernel_libraries

    path = Path(pte)
    if not path.is_file():
        raise ModelError(f"{pte}: no such file")
    load_kernel_libraries()
    try:
        return Runtime.get().load_program(path)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{pte}: does not load in executorch.runtime ({first})") from None


def _pick(logits: Any, temperature: float, top_p: float, generator: Any) -> int:
    """Greedy at temperature 0, else a sample from the top-p nucleus."""
    import torch

    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
