from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir.facts_quant import TORCHAO_LINEARS_DELEGATED
from pteflow.passes.partition.partitioner import partitioner_info

from ._partitioner import XnnpackPartitionPass
from .facts import DELEGATED_XNNPACK


@attrs.frozen
class PartitionXnnpackDqPass(XnnpackPartitionPass):
    """Lower dynamically quantized linears (and what XNNPACK fuses with them) to XNNPACK.

    Requires: an edge program. Provides: delegated.xnnpack; torchao-linears.delegated (it
    takes every 8da4w linear; the plan refuses a group size XNNPACK cannot lower).
    Wraps ``XnnpackDynamicallyQuantizedPartitioner`` through ``EdgeProgramManager.to_backend``,
    as export_llama's ``-X`` does; it gets first pick before ``partition-xnnpack`` (the
    general partitioner), the order export_llama's extended ops use. The to-edge pass asks
    this partitioner which ops to keep whole. Note: in ExecuTorch 1.5 this partitioner also
    takes fp32 linears (and the elementwise ops next to them), not only quantized ones.
    """

    info = partitioner_info("partition-xnnpack-dq", DELEGATED_XNNPACK, TORCHAO_LINEARS_DELEGATED)
    partitioner_class: ClassVar[str] = "XnnpackDynamicallyQuantizedPartitioner"
