"""A Llama's memory floor, checked before torch allocates it (driver/llama.py)."""

from __future__ import annotations

import os
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
