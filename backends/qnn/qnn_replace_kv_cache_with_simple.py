from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError
from pteflow.passes.base import PassInfo
from pteflow.passes.source.module_swap import LLAMA, LLAMA_ST, ModuleSwapPass, Site
from pteflow.passes.source.override_dtype import OverrideDtypePass

from .facts import KV_CACHE_SIMPLE


@attrs.frozen
class QnnReplaceKvCacheWithSimplePass(ModuleSwapPass):
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

    replaces = (f"{LLAMA}.attention:KVCache",)
    leaves = (f"{LLAMA_ST}.sdpa:KVCacheSimple",)
    transform = f"{LLAMA_ST}.sdpa:replace_kv_cache_with_simple_kv_cache"
    missing = "ExecuTorch KVCache module"

    def refuse(self, program: Program, sites: list[Site]) -> None:
        dynamic = sorted(m for m, shapes in program.dynamic_shapes.items() if shapes)
        if dynamic:
            raise ModelError(
                f"{self.name}: method(s) {', '.join(dynamic)} have dynamic shapes, but QNN's "
                "simple KV cache takes one input_pos per token; build the model with "
                "enable_dynamic_shape=False (export_llama refuses dynamic shapes with QNN)"
            )
