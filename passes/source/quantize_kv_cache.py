from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError

from ..base import PassInfo
from .module_swap import LLAMA, LLAMA_ST, ModuleSwapPass, Site
from .replace_sdpa_with_custom_op import ReplaceSdpaWithCustomOpPass


@attrs.frozen
class QuantizeKvCachePass(ModuleSwapPass):
    """Store the KV cache as int8 with per-token scales and zero points.

    What export_llama's ``--quantize_kv_cache`` does: ExecuTorch's
    ``replace_kv_cache_with_quantized_kv_cache`` turns every KVCache or
    CustomKVCache into a QuantizedKVCache (asymmetric per-token int8, updated
    with ``llama::update_cache``). Attention still sees float K/V (dequantized
    history plus the exact new token) until replace-sdpa-with-quantized-sdpa
    makes it read the int8 cache directly. Outputs change within quantization
    error (about 0.3% of the logit range on the tiny Llama).

    Requires: kv_cache. Provides: kv_cache.quantized.
    Runs after replace-sdpa-with-custom-op, the order export_llama applies them
    in (the custom-op pass swaps only plain KVCache modules).
    Refused on ring-buffer caches: upstream would turn them into a plain
    QuantizedKVCache of twice the window and drop the ring-buffer masking.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="quantize-kv-cache",
        level_in=Level.EAGER,
        requires={facts.KV_CACHE},
        provides={facts.KV_CACHE_QUANTIZED},
        after=(ReplaceSdpaWithCustomOpPass,),
    )

    replaces = (f"{LLAMA}.attention:KVCache", f"{LLAMA_ST}.custom_kv_cache:CustomKVCache")
    leaves = (f"{LLAMA_ST}.custom_kv_cache:QuantizedKVCache",)
    transform = f"{LLAMA_ST}.custom_kv_cache:replace_kv_cache_with_quantized_kv_cache"
    missing = "ExecuTorch Llama KVCache module"

    def refuse(self, program: Program, sites: list[Site]) -> None:
        for method, name, sub in sites:
            if getattr(sub, "is_ring_buffer", False):
                raise ModelError(
                    f"{self.name}: {method}:{name} is a ring-buffer KV cache "
                    f"({type(sub).__name__}), which the quantized KV cache does not support; "
                    "quantize the cache before making it a ring buffer"
                )
