"""Checks of a Llama's params that ExecuTorch's ModelArgs does not make (driver/llama.py):
values that would fail deep inside export or silently mean something else, and the
memory floor, checked before torch allocates it."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

from pteflow.ir.errors import ModelError


def check_memory(args: Any, where: str, seq_name: str, ctx_name: str) -> None:
    """Refuse a model whose weights, per-layer causal masks (ctx x ctx bools) and KV
    cache alone exceed this machine's memory, before torch tries to allocate them.

    A lower bound, so that no model that could fit is refused: weights at half a byte
    (a prequantized int4 checkpoint), the cache at two bytes; loading, the reference
    copy and export need more."""
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    ctx, dim, head = args.max_context_len, args.dim, args.head_dim
    hidden = getattr(args, "hidden_dim", None) or 4 * dim
    per_layer = {
        "masks": ctx * ctx,
        "KV cache": 2 * args.n_kv_heads * head * ctx * 2,
        "weights": (2 * dim * args.n_heads * head + 2 * dim * args.n_kv_heads * head) // 2
        + 3 * dim * hidden // 2,
    }
    need = {k: v * args.n_layers for k, v in per_layer.items()}
    need["weights"] += 2 * args.vocab_size * dim // 2
    total = sum(need.values())
    if total <= have:
        return
    biggest = max(need, key=lambda k: need[k])
    if biggest == "weights":
        cause = f"dim {dim}, n_layers {args.n_layers}, vocab_size {args.vocab_size}"
    else:
        name = ctx_name if ctx_name.startswith("--") or seq_name == "max_seq_len" else seq_name
        cause = f"{name} {ctx} x n_layers {args.n_layers}"
    raise ModelError(
        f"{where}: this model needs at least {total / 2**30:.0f} GiB ({biggest}: {cause}); "
        f"this machine has {have / 2**30:.0f} GiB"
    )


def check_values(params: Mapping[str, Any], where: str, number_keys: tuple[str, ...]) -> None:
    """Refuse non-finite numbers, non-bool values for ModelArgs' bool fields, and an
    odd head dimension (rotary embeddings rotate pairs of channels).

    Raises:
        ModelError: naming the key and the value.
    """
    from executorch.examples.models.llama.model_args import ModelArgs

    for key in number_keys:
        value = params.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            raise ModelError(f"{where}: {key} must be a finite number, got {value!r}")
    bools = {f.name for f in dataclasses.fields(ModelArgs) if isinstance(f.default, bool)}
    for key in sorted(bools & set(params)):
        if not isinstance(params[key], bool):
            raise ModelError(f"{where}: {key} must be true or false, got {params[key]!r}")
    head_dim = params.get("head_dim") or params["dim"] // params["n_heads"]
    if head_dim % 2:
        raise ModelError(
            f"{where}: the head dimension {head_dim} is odd; rotary embeddings need an "
            "even one (set head_dim, or dim / n_heads, to an even number)"
        )
