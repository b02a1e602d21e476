from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir.facts_quant import TORCHAO_LINEARS_DELEGATED
from pteflow.passes.partition.partitioner import partitioner_info

from ._partitioner import XnnpackPartitionPass
from .facts import DELEGATED_XNNPACK


@attrs.frozen
class PartitionXnnpackPass(XnnpackPartitionPass):
    """Lower everything XNNPACK supports (fp32 and quantized) to XNNPACK.

    Requires: an edge program. Provides: delegated.xnnpack; torchao-linears.delegated (it
    takes every 8da4w linear; the plan refuses a group size XNNPACK cannot lower).
    Wraps the general ``XnnpackPartitioner`` through ``EdgeProgramManager.to_backend``: what
    export_llama's ``--xnnpack-extended-ops`` adds after the dynamic-quant partitioner. Listed
    after ``partition-xnnpack-dq`` it takes what that one left. The to-edge pass asks this
    partitioner which ops to keep whole (e.g. ``aten.linear``).
    """

    info = partitioner_info("partition-xnnpack", DELEGATED_XNNPACK, TORCHAO_LINEARS_DELEGATED)
    partitioner_class: ClassVar[str] = "XnnpackPartitioner"
