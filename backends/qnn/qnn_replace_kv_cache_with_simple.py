from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError
from pteflow.passes.base import Pass, PassContext, PassInfo, PassResult
from pteflow.passes.source.llama import copy_modules, not_a_llama
from pteflow.passes.source.override_dtype import OverrideDtypePass

from .facts import KV_CACHE_SIMPLE


@attrs.frozen
class QnnReplaceKvCacheWithSimplePass(Pass):
    """Use QNN's simple KV cache: [B, S, H, D] buffers written with index_put.

    What export_llama's ``--qnn -kv`` does first: ExecuTorch's
    ``replace_kv_cache_with_simple_kv_cache`` (KVCache -> KVCacheSimple). The caches start
    empty, as upstream's do. Runs before ``override-dtype``, as export_llama casts last.

    Requires: kv_cache, and static shapes: KVCacheSimple writes one cache row per entry of
    ``input_pos``, so a call must carry one position per token (export_llama refuses dynamic
    shapes with QNN); a program with dynamic shapes is refused (ModelError).
    Provides: kv_cache.simple.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="qnn-replace-kv-cache-with-simple",
        level_in=Level.EAGER,
        requires={facts.KV_CACHE},
        provides={KV_CACHE_SIMPLE},
        before=(OverrideDtypePass,),
    )

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        from executorch.examples.models.llama.attention import KVCache
        from executorch.examples.models.llama.source_transformation.sdpa import (
            KVCacheSimple,
            replace_kv_cache_with_simple_kv_cache,
        )

        caches = [
            sub
            for root in program.modules().values()
            for sub in root.modules()
            if isinstance(sub, KVCache)
        ]
        if not caches:
            if any(
                isinstance(sub, KVCacheSimple)
                for root in program.modules().values()
                for sub in root.modules()
            ):
                return PassResult(program, False)  # already done
            raise not_a_llama(self.name, "ExecuTorch KVCache module")
        dynamic = sorted(m for m, shapes in program.dynamic_shapes.items() if shapes)
        if dynamic:
            raise ModelError(
                f"{self.name}: method(s) {', '.join(dynamic)} have dynamic shapes, but QNN's "
                "simple KV cache takes one input_pos per token; build the model with "
                "enable_dynamic_shape=False (export_llama refuses dynamic shapes with QNN)"
            )
        modules = copy_modules(program)
        for module in modules.values():
            replace_kv_cache_with_simple_kv_cache(module)
        return PassResult(program.evolve(artifact=modules), True)
