"""What the XNNPACK partition passes share: options, availability, lowering."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs

from pteflow.ir import Program
from pteflow.ir.facts_quant import TORCHAO_LINEARS_DELEGATED
from pteflow.passes.base import Pass, PassContext, PassResult
from pteflow.passes.partition.availability import missing_modules
from pteflow.passes.partition.lowering import is_bool
from pteflow.passes.partition.partitioner import LoweringPass
from pteflow.passes.quantize.quantize_8da4w import Quantize8da4wPass

from . import idle_passes


def xnnpack_missing() -> str | None:
    """Why XNNPACK lowering cannot run here, or None."""
    if not missing_modules("executorch.backends.xnnpack"):
        return None
    return (
        "executorch.backends.xnnpack is not installed; "
        "install an executorch wheel built with XNNPACK"
    )


@attrs.frozen
class XnnpackPartitionPass(LoweringPass):
    """Base of the XNNPACK partition passes (not a pass itself: it has no ``info``)."""

    #: the class in executorch.backends.xnnpack.partition.xnnpack_partitioner
    delegation = "xnnpack"
    partitioner_class: ClassVar[str]
    enable_bf16: bool = attrs.field(default=False, validator=is_bool)

    def make_partitioner(self) -> Any:
        from executorch.backends.xnnpack.partition import xnnpack_partitioner

        return getattr(xnnpack_partitioner, self.partitioner_class)(enable_bf16=self.enable_bf16)

    def unavailable_reason(self) -> str | None:
        return xnnpack_missing()

    def check_schedule(self, earlier: Sequence[Pass], later: Sequence[Pass]) -> str | None:
        """XNNPACK lowers grouped int4 weights only in groups of a multiple of 32.

        Upstream asserts it in ``NodeVisitor._check_per_channel_group_params``, after
        to-edge; the plan knows it from the quantize pass's options.
        """
        for p in earlier:
            if isinstance(p, Quantize8da4wPass) and p.group_size % 32:
                return (
                    f"XNNPACK needs an 8da4w group size that is a multiple of 32, but "
                    f"{p.describe()} has group_size={p.group_size}; use "
                    f"quantize-8da4w{{group_size=32}} (or 64, 128, ...), or drop {self.name}"
                )
        return None

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        with idle_passes.skipped():
            result = super().run(program, ctx)
        # took nothing: still claims no torchao linear is left outside, if none is
        fact = TORCHAO_LINEARS_DELEGATED
        if fact in result.withheld and fact.check(result.program) is None:
            return attrs.evolve(result, withheld=result.withheld - {fact})
        return result
