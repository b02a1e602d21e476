from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError

from ..base import PassInfo
from .llama import boolean
from .module_swap import LLAMA, LLAMA_ST, ModuleSwapPass, Site, resolve


@attrs.frozen
class ReplaceSdpaWithCustomOpPass(ModuleSwapPass):
    """Use ExecuTorch's fused llama::custom_sdpa op and its in-place KV-cache update.

    What export_llama's ``--use_sdpa_with_kv_cache`` does: ExecuTorch's
    ``replace_sdpa_with_custom_op`` (SDPA -> SDPACustom), then
    ``replace_kv_cache_with_custom_kv_cache`` (KVCache -> CustomKVCache, stored
    [B, S, H, D] and updated with ``llama::update_cache``). The order is
    upstream's: the KV-cache swap turns on ``SDPACustom.use_attention_mask`` for
    ring-buffer caches, and an SDPA swap after it would turn that off again.

    Requires: kv_cache (the model source builds it).
    Provides: sdpa.custom and kv_cache.custom; sets the ``use_sdpa_with_kv_cache``
    metadata entry (a constant method of the .pte, as export_llama writes it).

    ``use_attention_mask`` passes the attention's mask to custom_sdpa instead of
    computing causality from ``input_pos``. It is refused unless every KV cache
    is a ring buffer: a plain cache's mask is boolean, and llama::custom_sdpa
    rejects a non-float mask by logging "Attention mask must be a Float tensor"
    and returning garbage, without raising.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="replace-sdpa-with-custom-op",
        level_in=Level.EAGER,
        requires={facts.KV_CACHE},
        provides={facts.SDPA_CUSTOM, facts.KV_CACHE_CUSTOM},
    )
    use_attention_mask: bool = attrs.field(default=False, validator=boolean)

    replaces = (f"{LLAMA}.attention:SDPA", f"{LLAMA}.attention:KVCache")
    # already done, maybe quantized since
    leaves = (f"{LLAMA_ST}.sdpa:SDPACustom", f"{LLAMA_ST}.sdpa:QuantizedSDPA")
    missing = "ExecuTorch Llama SDPA or KVCache module"

    def refuse(self, program: Program, sites: list[Site]) -> None:
        if self.use_attention_mask:
            self._check_masks(program)

    def swap(self, modules: dict[str, Any], sites: list[Site]) -> None:
        replace_sdpa = resolve(f"{LLAMA_ST}.sdpa:replace_sdpa_with_custom_op")
        replace_cache = resolve(f"{LLAMA_ST}.custom_kv_cache:replace_kv_cache_with_custom_kv_cache")
        for module in modules.values():
            # upstream's order (see the docstring); both edit the copy in place
            replace_sdpa(module, use_attention_mask=self.use_attention_mask)
            replace_cache(module)

    def metadata(self, program: Program) -> Mapping[str, Any]:
        metadata = dict(program.metadata)
        if "use_sdpa_with_kv_cache" in metadata:
            metadata["use_sdpa_with_kv_cache"] = True
        return metadata

    def _check_masks(self, program: Program) -> None:
        from executorch.examples.models.llama.attention import SDPA

        for method, root in program.modules().items():
            for name, sub in root.named_modules():
                if not isinstance(getattr(sub, "SDPA", None), SDPA):
                    continue
                cache = getattr(sub, "kv_cache", None)
                if not getattr(cache, "is_ring_buffer", False):
                    raise _mask_refused(self.name, f"{method}:{name}")


def _mask_refused(pass_name: str, where: str) -> ModelError:
    return ModelError(
        f"{pass_name}: use_attention_mask=true needs ring-buffer KV caches, but {where} has a "
        "plain KV cache whose boolean mask llama::custom_sdpa rejects (it returns garbage); "
        "drop use_attention_mask"
    )
