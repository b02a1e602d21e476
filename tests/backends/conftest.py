"""Fixtures for the backend tests.

A seeded MLP lowered once per module through both XNNPACK partition passes; the source-pass
tests' tiny Llama fixtures (``tests/passes/source/conftest.py``) for the backends' source passes.
"""

from __future__ import annotations

import pytest

from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.backends.xnnpack.partition_xnnpack_dq import PartitionXnnpackDqPass
from pteflow.ir import Program
from pteflow.passes import PassManager, RunResult
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from tests.passes.source.conftest import tiny_llama, tiny_llama_mha  # noqa: F401

from ..models import mlp

#: The edge options LLMEdgeManager uses.
BUILDER_EDGE = ToEdgePass(check_ir_validity=False, skip_dim_order=True)


@pytest.fixture(scope="module")
def lowered_mlp() -> RunResult:
    """export, to-edge (builder options), partition-xnnpack-dq, partition-xnnpack."""
    module, inputs = mlp()
    passes = [TorchExportPass(), BUILDER_EDGE, PartitionXnnpackDqPass(), PartitionXnnpackPass()]
    return PassManager(passes, verify="each").run(Program.eager(module, inputs))
