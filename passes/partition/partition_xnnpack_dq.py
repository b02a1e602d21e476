from __future__ import annotations

from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts

from ..base import Pass, PassContext, PassInfo, PassResult
from ._lowering import is_bool, lower


@attrs.frozen
class PartitionXnnpackDqPass(Pass):
    """Lower dynamically quantized linears (and what XNNPACK fuses with them) to XNNPACK.

    Requires: an edge program. Provides: delegated.xnnpack.
    Wraps ``XnnpackDynamicallyQuantizedPartitioner`` through ``EdgeProgramManager.to_backend``,
    as export_llama's ``-X`` does; it gets first pick before ``partition-xnnpack`` (the
    general partitioner), the order export_llama's extended ops use. The to-edge pass asks
    this partitioner which ops to keep whole. Note: in ExecuTorch 1.5 this partitioner also
    takes fp32 linears (and the elementwise ops next to them), not only quantized ones.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="partition-xnnpack-dq",
        level_in=Level.EDGE,
        provides={facts.DELEGATED_XNNPACK},
        ordered=True,
        delegation="xnnpack",
    )
    enable_bf16: bool = attrs.field(default=False, validator=is_bool)

    def make_partitioner(self) -> Any:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
            XnnpackDynamicallyQuantizedPartitioner,
        )

        return XnnpackDynamicallyQuantizedPartitioner(enable_bf16=self.enable_bf16)

    def unavailable_reason(self) -> str | None:
        return _xnnpack_missing()

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return lower(self, program, ctx)


def _xnnpack_missing() -> str | None:
    import importlib.util

    try:
        found = importlib.util.find_spec("executorch.backends.xnnpack") is not None
    except ModuleNotFoundError:
        found = False
    return (
        None
        if found
        else (
            "executorch.backends.xnnpack is not installed; install an "
            "executorch wheel built with XNNPACK"
        )
    )
