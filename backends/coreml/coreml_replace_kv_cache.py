from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, facts
from pteflow.passes.base import PassInfo
from pteflow.passes.source.module_swap import LLAMA, LLAMA_ST, ModuleSwapPass
from pteflow.passes.source.override_dtype import OverrideDtypePass

from .facts import KV_CACHE_COREML


@attrs.frozen
class CoremlReplaceKvCachePass(ModuleSwapPass):
    """Update the KV cache with index_put, which CoreML lowers to iOS 18's slice_update.

    What export_llama's ``--coreml -kv`` does second: ExecuTorch's
    ``replace_kv_cache_with_coreml_kv_cache`` (KVCache -> KVCacheCoreML, same [B, H, S, D]
    layout, written with ``aten.index_put_`` instead of slice assignment). The caches start
    empty, as the model's do. Runs before ``override-dtype``, as export_llama casts last.

    Requires: kv_cache. Provides: kv_cache.coreml.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="coreml-replace-kv-cache",
        level_in=Level.EAGER,
        requires={facts.KV_CACHE},
        provides={KV_CACHE_COREML},
        before=(OverrideDtypePass,),
        delegation="coreml",
    )

    replaces = (f"{LLAMA}.attention:KVCache",)
    leaves = (f"{LLAMA_ST}.sdpa:KVCacheCoreML",)
    transform = f"{LLAMA_ST}.sdpa:replace_kv_cache_with_coreml_kv_cache"
    missing = "ExecuTorch KVCache module"
