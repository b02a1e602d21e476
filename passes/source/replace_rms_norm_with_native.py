from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError

from ..base import Pass, PassContext, PassInfo, PassResult
from .llama import copy_modules, count, not_a_llama, submodules


@attrs.frozen
class ReplaceRmsNormWithNativePass(Pass):
    """Replace ExecuTorch's hand-written RMSNorm with torch.nn.RMSNorm.

    Wraps ExecuTorch's ``replace_rms_norm_with_native_rms_norm`` (export_llama
    applies it for MLX), which keeps each norm's weight and eps. The result is
    equal in fp32; in fp16/bf16 the native op normalizes in the input dtype
    where the hand-written one computes in fp32.

    Provides: rmsnorm.native.
    Refused when a norm has ``add_unit_offset`` (Qwen3.5-style ``1 + weight``
    scaling): upstream drops the offset silently.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="replace-rms-norm-with-native",
        level_in=Level.EAGER,
        provides={facts.RMSNORM_NATIVE},
    )

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch
        from executorch.examples.models.llama.norm import RMSNorm
        from executorch.examples.models.llama.source_transformation.rms_norm import (
            replace_rms_norm_with_native_rms_norm,
        )

        norms = [
            (method, name, sub)
            for method, name, sub in submodules(program)
            if isinstance(sub, RMSNorm)
        ]
        if not norms:
            if count(program, torch.nn.RMSNorm):
                return PassResult(program, False)  # already done
            raise not_a_llama(self.name, "ExecuTorch RMSNorm module")
        for method, name, sub in norms:
            if sub.add_unit_offset:
                raise ModelError(
                    f"{self.name}: {method}:{name} scales by (1 + weight) (add_unit_offset), "
                    "which torch.nn.RMSNorm cannot express; leave this model's norms as they are"
                )
        modules = copy_modules(program)
        for module in modules.values():
            replace_rms_norm_with_native_rms_norm(module)  # the new norms share the weights
        return PassResult(program.evolve(artifact=modules), True)
