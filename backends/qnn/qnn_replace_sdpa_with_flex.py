from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.passes.base import Pass, PassContext, PassInfo, PassResult
from pteflow.passes.source.llama import copy_modules, count, not_a_llama
from pteflow.passes.source.override_dtype import OverrideDtypePass

from .facts import SDPA_FLEX


@attrs.frozen
class QnnReplaceSdpaWithFlexPass(Pass):
    """Compute attention as QNN's SDPAFlex: matmul, add the mask, softmax, matmul.

    What export_llama's ``--qnn -kv`` does second: ExecuTorch's
    ``replace_sdpa_with_flex_sdpa`` (SDPA -> SDPAFlex, KV heads repeated by concatenation),
    so the graph has no fused SDPA op for QNN to lower. Runs before ``override-dtype``.

    Requires: kv_cache, and mask.additive: SDPAFlex *adds* the mask to the scores, so with
    the model's boolean mask it would add 1/0 instead of masking (upstream relies on
    ``replace_causal_mask`` running in the same list).
    Provides: sdpa.flex.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="qnn-replace-sdpa-with-flex",
        level_in=Level.EAGER,
        requires={facts.KV_CACHE, facts.MASK_ADDITIVE},
        provides={SDPA_FLEX},
        before=(OverrideDtypePass,),
    )

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        from executorch.examples.models.llama.attention import SDPA
        from executorch.examples.models.llama.source_transformation.sdpa import (
            SDPAFlex,
            replace_sdpa_with_flex_sdpa,
        )

        if not count(program, SDPA):
            if count(program, SDPAFlex):
                return PassResult(program, False)  # already done
            raise not_a_llama(self.name, "ExecuTorch SDPA module")
        modules = copy_modules(program)
        for module in modules.values():
            replace_sdpa_with_flex_sdpa(module)
        return PassResult(program.evolve(artifact=modules), True)
