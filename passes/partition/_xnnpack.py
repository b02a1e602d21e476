"""What the XNNPACK partition passes share: options, availability, lowering."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from pteflow.ir import Program

from ..base import Pass, PassContext, PassResult
from ._availability import missing_modules
from ._lowering import is_bool, lower


def xnnpack_missing() -> str | None:
    """Why XNNPACK lowering cannot run here, or None."""
    if not missing_modules("executorch.backends.xnnpack"):
        return None
    return (
        "executorch.backends.xnnpack is not installed; "
        "install an executorch wheel built with XNNPACK"
    )


@attrs.frozen
class XnnpackPartitionPass(Pass):
    """Base of the XNNPACK partition passes (not a pass itself: it has no ``info``)."""

    #: the class in executorch.backends.xnnpack.partition.xnnpack_partitioner
    partitioner_class: ClassVar[str]
    enable_bf16: bool = attrs.field(default=False, validator=is_bool)

    def make_partitioner(self) -> Any:
        from executorch.backends.xnnpack.partition import xnnpack_partitioner

        return getattr(xnnpack_partitioner, self.partitioner_class)(enable_bf16=self.enable_bf16)

    def unavailable_reason(self) -> str | None:
        return xnnpack_missing()

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return lower(self, program, ctx)
