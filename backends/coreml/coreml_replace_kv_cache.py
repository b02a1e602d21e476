from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.passes.base import Pass, PassContext, PassInfo, PassResult
from pteflow.passes.policy import Delegating
from pteflow.passes.source.llama import copy_modules, count, not_a_llama
from pteflow.passes.source.override_dtype import OverrideDtypePass

from .facts import KV_CACHE_COREML


@attrs.frozen
class CoremlReplaceKvCachePass(Pass, Delegating):
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
    )
    delegation = "coreml"

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        from executorch.examples.models.llama.attention import KVCache
        from executorch.examples.models.llama.source_transformation.sdpa import (
            KVCacheCoreML,
            replace_kv_cache_with_coreml_kv_cache,
        )

        if not count(program, KVCache):
            if count(program, KVCacheCoreML):
                return PassResult(program, False)  # already done
            raise not_a_llama(self.name, "ExecuTorch KVCache module")
        modules = copy_modules(program)
        for module in modules.values():
            replace_kv_cache_with_coreml_kv_cache(module)
        return PassResult(program.evolve(artifact=modules), True)
