from __future__ import annotations

from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError

from ..base import PassInfo
from .llama import submodules
from .module_swap import LLAMA, LLAMA_ST, ModuleSwapPass, Site, resolve


@attrs.frozen
class ReplaceSdpaWithQuantizedSdpaPass(ModuleSwapPass):
    """Make attention read the int8 KV cache directly with llama::custom_quantized_sdpa.

    What export_llama's ``--quantize_kv_cache`` does after quantizing the cache:
    ExecuTorch's ``replace_sdpa_with_quantized_sdpa`` swaps SDPACustom for
    QuantizedSDPA in every attention whose cache is a QuantizedKVCache, and
    makes that cache return int8 values.

    Requires: kv_cache.quantized (the cache it reads) and sdpa.custom: upstream
    swaps only SDPACustom and silently does nothing to plain SDPA, so without
    replace-sdpa-with-custom-op export_llama's ``--quantize_kv_cache`` keeps
    float attention over a dequantized cache.
    Provides: sdpa.quantized. Invalidates sdpa.custom: attention no longer
    calls llama::custom_sdpa.
    Refused when an SDPACustom uses an attention mask: upstream builds
    QuantizedSDPA without it (its TODO), which would drop the mask.
    Each cache stays registered once, under its attention (see
    ``_register_caches_once``): upstream's second registration breaks
    torch.export's non-strict mode.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="replace-sdpa-with-quantized-sdpa",
        level_in=Level.EAGER,
        requires={facts.KV_CACHE_QUANTIZED, facts.SDPA_CUSTOM},
        provides={facts.SDPA_QUANTIZED},
        invalidates={facts.SDPA_CUSTOM},
    )

    leaves = (f"{LLAMA_ST}.sdpa:QuantizedSDPA",)
    missing = "attention with a QuantizedKVCache and SDPACustom"

    def sites(self, program: Program) -> list[Site]:
        attention = resolve(f"{LLAMA}.attention:Attention")
        cache = resolve(f"{LLAMA_ST}.custom_kv_cache:QuantizedKVCache")
        sdpa = resolve(f"{LLAMA_ST}.sdpa:SDPACustom")
        return [
            (method, name, sub)
            for method, name, sub in submodules(program)
            if isinstance(sub, attention)
            and isinstance(getattr(sub, "kv_cache", None), cache)
            and isinstance(getattr(sub, "SDPA", None), sdpa)
        ]

    def refuse(self, program: Program, sites: list[Site]) -> None:
        for method, name, sub in sites:
            if sub.SDPA.use_attention_mask:
                raise ModelError(
                    f"{self.name}: {method}:{name} uses custom SDPA with an attention mask, "
                    "which ExecuTorch's QuantizedSDPA does not support (the mask would be "
                    "dropped); run replace-sdpa-with-custom-op without use_attention_mask"
                )

    def swap(self, modules: dict[str, Any], sites: list[Site]) -> None:
        replace = resolve(f"{LLAMA_ST}.sdpa:replace_sdpa_with_quantized_sdpa")
        quantized_sdpa = resolve(self.leaves[0])
        for module in modules.values():
            # also sets return_float_values=False on the (copied) caches
            replace(module)
            _register_caches_once(module, quantized_sdpa)


def _register_caches_once(module: Any, quantized_sdpa: Any) -> None:
    """Keep each QuantizedSDPA's cache as a plain attribute, registered only under its attention.

    Upstream registers the QuantizedKVCache as a submodule of both the attention
    and its QuantizedSDPA (which reads the scales). With the cache's buffers
    under two names, torch.export's non-strict mode (the export pass's default)
    traces, but ``run_decompositions`` then fails in ``aot_stage2_export``
    ("expected compiled_fn to be GraphModule"). The same object stays
    reachable, so the computation is unchanged.
    """
    for sub in list(module.modules()):
        if isinstance(sub, quantized_sdpa) and "kv_cache" in sub._modules:
            cache = sub._modules.pop("kv_cache")
            object.__setattr__(sub, "kv_cache", cache)
