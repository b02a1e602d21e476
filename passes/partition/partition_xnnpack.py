from __future__ import annotations

from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts

from ..base import Pass, PassContext, PassInfo, PassResult
from ._lowering import is_bool, lower
from .partition_xnnpack_dq import _xnnpack_missing


@attrs.frozen
class PartitionXnnpackPass(Pass):
    """Lower everything XNNPACK supports (fp32 and quantized) to XNNPACK.

    Requires: an edge program. Provides: delegated.xnnpack.
    Wraps the general ``XnnpackPartitioner`` through ``EdgeProgramManager.to_backend``: what
    export_llama's ``--xnnpack-extended-ops`` adds after the dynamic-quant partitioner. Listed
    after ``partition-xnnpack-dq`` it takes what that one left. The to-edge pass asks this
    partitioner which ops to keep whole (e.g. ``aten.linear``).
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="partition-xnnpack",
        level_in=Level.EDGE,
        provides={facts.DELEGATED_XNNPACK},
        ordered=True,
        delegation="xnnpack",
    )
    enable_bf16: bool = attrs.field(default=False, validator=is_bool)

    def make_partitioner(self) -> Any:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
            XnnpackPartitioner,
        )

        return XnnpackPartitioner(enable_bf16=self.enable_bf16)

    def unavailable_reason(self) -> str | None:
        return _xnnpack_missing()

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return lower(self, program, ctx)
