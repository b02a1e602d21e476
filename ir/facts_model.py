"""Facts about the model's structure that source passes establish: KV cache, attention,
masks, norms, dtype (backend-neutral; several backends' passes require them).

Checked on the real program: at EAGER by module classes and buffers, at ATEN and later by
the ops the modules leave in the graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fact import Fact, _eager_module_named, all_of, ops_present
from .levels import Level

if TYPE_CHECKING:
    from .program import Program

KV_CACHE = Fact(
    "kv_cache",
    "attention keeps a KV cache; the model takes (tokens, {'input_pos': ...})",
    _eager_module_named("KVCache"),
)
KV_CACHE_CUSTOM = Fact(
    "kv_cache.custom",
    "the KV cache is updated with ExecuTorch's llama::update_cache op",
    all_of(
        _eager_module_named("CustomKVCache", "QuantizedKVCache"),
        ops_present("update_cache", "update_quantized_cache"),
    ),
)
KV_CACHE_QUANTIZED = Fact(
    "kv_cache.quantized",
    "the KV cache stores int8 values with per-token scales",
    all_of(
        _eager_module_named("QuantizedKVCache"),
        ops_present("update_quantized_cache", "quantize_per_token"),
    ),
)
SDPA_CUSTOM = Fact(
    "sdpa.custom",
    "attention uses ExecuTorch's fused llama::custom_sdpa op",
    # QuantizedSDPA is the same fused custom op reading an int8 cache
    all_of(
        _eager_module_named("SDPACustom", "QuantizedSDPA"),
        ops_present("custom_sdpa", "custom_quantized_sdpa"),
    ),
)
SDPA_QUANTIZED = Fact(
    "sdpa.quantized",
    "attention reads the int8 KV cache directly (llama::custom_quantized_sdpa)",
    all_of(_eager_module_named("QuantizedSDPA"), ops_present("custom_quantized_sdpa")),
)


def _native_rms_norm(program: Program) -> str | None:
    """EAGER: torch.nn.RMSNorm modules and none of ExecuTorch's hand-written ones."""
    if program.level != Level.EAGER:
        return None
    import torch

    found = hand_written = 0
    for module in program.modules().values():
        for sub in module.modules():
            if isinstance(sub, torch.nn.RMSNorm):
                found += 1
            elif type(sub).__name__ == "RMSNorm":
                hand_written += 1
    if hand_written:
        return f"{hand_written} hand-written RMSNorm module(s) remain"
    return None if found else "no torch.nn.RMSNorm module"


RMSNORM_NATIVE = Fact(
    "rmsnorm.native",
    "RMSNorm is torch's native rms_norm, not the hand-written formula",
    all_of(_native_rms_norm, ops_present("rms_norm")),
)


def _no_bool_masks(program: Program) -> str | None:
    """At EAGER: every buffer called ``mask`` is floating point (additive)."""
    if program.level != Level.EAGER:
        return None
    found = False
    for method, root in program.modules().items():
        for name, buf in root.named_buffers():
            if name.rsplit(".", 1)[-1] != "mask":
                continue
            found = True
            if not buf.is_floating_point():
                return f"{method}:{name} is a {buf.dtype} mask, not an additive float mask"
    return None if found else "no buffer called mask"


MASK_ADDITIVE = Fact(
    "mask.additive",
    "causal masks are float and added to the attention scores (0 or a large negative value)",
    _no_bool_masks,
)
DTYPE_OVERRIDDEN = Fact(
    "dtype.overridden",
    "parameters and buffers are cast to the requested compute dtype",
)
