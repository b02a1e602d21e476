"""A seeded MLP lowered once per module through both XNNPACK partition passes."""

from __future__ import annotations

import pytest

from pteflow.ir import Program
from pteflow.passes import PassManager, RunResult
from pteflow.passes.convert.export import ExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.partition.partition_xnnpack import PartitionXnnpackPass
from pteflow.passes.partition.partition_xnnpack_dq import PartitionXnnpackDqPass

from ...models import mlp

#: The edge options LLMEdgeManager uses.
BUILDER_EDGE = ToEdgePass(check_ir_validity=False, skip_dim_order=True)


@pytest.fixture(scope="module")
def lowered_mlp() -> RunResult:
    """export, to-edge (builder options), partition-xnnpack-dq, partition-xnnpack."""
    module, inputs = mlp()
    passes = [ExportPass(), BUILDER_EDGE, PartitionXnnpackDqPass(), PartitionXnnpackPass()]
    return PassManager(passes, verify="each").run(Program.eager(module, inputs))
