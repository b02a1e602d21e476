from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program
from pteflow.ir.errors import ModelError
from pteflow.passes.base import PassInfo
from pteflow.passes.source.llama import submodules
from pteflow.passes.source.module_swap import ModuleSwapPass
from pteflow.passes.source.override_dtype import OverrideDtypePass

from .facts import LINEAR_CONV2D
from .split_mha_to_sha import SplitMhaToShaPass


@attrs.frozen
class QnnConvertLinearToConv2dPass(ModuleSwapPass):
    """Replace every nn.Linear with a 1x1 conv2d (QNN HTP runs convolutions fastest).

    What export_llama's ``--qnn -kv`` does last among its QNN transforms: ExecuTorch's
    ``backends/qualcomm/utils/utils.convert_linear_to_conv2d`` (reshape to NCHW, transpose,
    1x1 ``Conv2d`` with the linear's weight, transpose back). Equal to the linears in fp32
    up to rounding. Runs after split-mha-to-sha (which splits linears) and before
    ``override-dtype``. Provides: linear.conv2d.

    The conv weights are views of the linear weights (upstream reshapes without copying).
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="qnn-convert-linear-to-conv2d",
        level_in=Level.EAGER,
        provides={LINEAR_CONV2D},
        after=(SplitMhaToShaPass,),
        before=(OverrideDtypePass,),
    )

    replaces = ("torch.nn:Linear",)
    transform = "executorch.backends.qualcomm.utils.utils:convert_linear_to_conv2d"

    def done(self, program: Program) -> bool:
        return any(type(sub).__name__ == "Conv2D" for _, _, sub in submodules(program))

    def not_found(self) -> ModelError:
        return ModelError(f"{self.name}: the model has no nn.Linear layer to convert")
