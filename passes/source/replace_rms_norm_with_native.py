from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError

from ..base import PassInfo
from .module_swap import LLAMA, LLAMA_ST, ModuleSwapPass, Site


@attrs.frozen
class ReplaceRmsNormWithNativePass(ModuleSwapPass):
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

    replaces = (f"{LLAMA}.norm:RMSNorm",)
    leaves = ("torch.nn:RMSNorm",)
    # the new norms share the weights
    transform = f"{LLAMA_ST}.rms_norm:replace_rms_norm_with_native_rms_norm"
    missing = "ExecuTorch RMSNorm module"

    def refuse(self, program: Program, sites: list[Site]) -> None:
        for method, name, sub in sites:
            if sub.add_unit_offset:
                raise ModelError(
                    f"{self.name}: {method}:{name} scales by (1 + weight) (add_unit_offset), "
                    "which torch.nn.RMSNorm cannot express; leave this model's norms as they are"
                )
