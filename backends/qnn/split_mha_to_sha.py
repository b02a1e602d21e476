from __future__ import annotations

from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError
from pteflow.passes.base import PassInfo
from pteflow.passes.source.module_swap import LLAMA, ModuleSwapPass, Site

from .facts import ATTENTION_SHA, KV_CACHE_SIMPLE, SDPA_FLEX
from .qnn_replace_kv_cache_with_simple import QnnReplaceKvCacheWithSimplePass
from .qnn_replace_sdpa_with_flex import QnnReplaceSdpaWithFlexPass


@attrs.frozen
class SplitMhaToShaPass(ModuleSwapPass):
    """Split every multi-head attention into single-head attention (QNN's MHA -> SHA).

    Replaces each ``AttentionMHA`` of an ExecuTorch Llama with pteflow's ``AttentionSHA``:
    per-head q/k/v linears (row slices of the fused weights), the model's RoPE per head, one
    ``[B, S, head_dim]`` KV cache per KV head (contents carried over), and per-head scores,
    mask, softmax and weighted sum, concatenated in head order before ``wo``. Eager outputs
    equal the unsplit model's at every decode step (fp32 rounding). QNN HTP runs single-head
    attention faster; export_llama's ``--use_qnn_sha`` asks for the same thing.

    Requires: kv_cache. Provides: attention.sha. Invalidates: kv_cache.simple, sdpa.flex
    (the attention modules that carried them are gone). Runs after QNN's simple-KV-cache
    and flex-SDPA passes when a pipeline has them (it splits their modules too; they would
    find nothing to replace after it), so ``qnn_default`` can add it without dropping them.

    Why not upstream: ExecuTorch 1.5.1's ``replace_attention_to_attention_sha`` crashes in
    eager forward ("not enough values to unpack": its attention returns a bare tensor where
    ``TransformerBlock`` expects ``(output, update)``) and rotates with a different RoPE layout,
    so its outputs would not equal the model's even with that fixed. Refused (ModelError) for
    attention this split does not reproduce exactly: QK norm, gates, output norm, YOCO
    shared KV, ring-buffer or custom/quantized KV caches, fused custom SDPA.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="split-mha-to-sha",
        level_in=Level.EAGER,
        requires={facts.KV_CACHE},
        provides={ATTENTION_SHA},
        invalidates={KV_CACHE_SIMPLE, SDPA_FLEX},
        after=(QnnReplaceKvCacheWithSimplePass, QnnReplaceSdpaWithFlexPass),
    )

    replaces = (f"{LLAMA}.attention:AttentionMHA",)
    leaves = ("pteflow.backends.qnn._sha:AttentionSHA",)
    missing = "ExecuTorch AttentionMHA module"

    def refuse(self, program: Program, sites: list[Site]) -> None:
        from ._sha import unsupported

        for method, name, sub in sites:
            why = unsupported(sub)
            if why:
                raise ModelError(
                    f"{self.name}: cannot split {method}:{name} exactly: {why}; leave this "
                    "model's attention multi-head"
                )

    def swap(self, modules: dict[str, Any], sites: list[Site]) -> None:
        from ._sha import AttentionSHA

        for method, name, _ in sites:
            root = modules[method]
            parent_name, _, child = name.rpartition(".")
            parent = root.get_submodule(parent_name) if parent_name else root
            setattr(parent, child, AttentionSHA(getattr(parent, child)))
