from __future__ import annotations

import pytest

from pteflow.backends.xnnpack.facts import DELEGATED_XNNPACK
from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.backends.xnnpack.partition_xnnpack_dq import PartitionXnnpackDqPass
from pteflow.ir import Level, Program, views
from pteflow.ir.errors import InvariantError, OptionError
from pteflow.ir.facts_quant import TORCHAO_LINEARS_DELEGATED
from pteflow.passes import PassContext, PassManager, plan
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.convert.to_executorch import ToExecutorchPass
from pteflow.passes.partition.lowering import check_lowered

from ...models import mlp
from ..conftest import BUILDER_EDGE

# The config LLMEdgeManager.to_executorch uses.
BUILDER_ET = ToExecutorchPass(alloc_graph_input=False, const_prop=True)


def test_listed_order_decides_first_pick():
    passes = [TorchExportPass(), ToEdgePass(), PartitionXnnpackPass(), PartitionXnnpackDqPass()]
    order = plan(passes)
    assert [p.name for p in order.ordered_passes()] == [
        "export",
        "to-edge",
        "partition-xnnpack",
        "partition-xnnpack-dq",
    ]
    assert (
        "after partition-xnnpack#2: listed earlier among ordered passes (first pick)"
        in order.why(3)
    )


@pytest.mark.slow
def test_general_partitioner_alone_takes_the_mlp():
    module, inputs = mlp()
    run = PassManager([TorchExportPass(), ToEdgePass(), PartitionXnnpackPass()]).run(
        Program.eager(module, inputs)
    )
    record = run.records[-1]
    assert (record.modified, record.delegated) == (True, {"XnnpackBackend": 3})
    assert len(views.delegation_summary(run.program)) == 1
    assert DELEGATED_XNNPACK in run.program.facts


@pytest.mark.slow
def test_same_pte_as_to_edge_transform_and_lower(lowered_mlp):
    """The split flow writes the very bytes the fused upstream call does (builder options)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
        XnnpackDynamicallyQuantizedPartitioner,
        XnnpackPartitioner,
    )
    from executorch.exir import to_edge_transform_and_lower

    module, inputs = mlp()
    aten = PassManager([TorchExportPass()]).run(Program.eager(module, inputs)).program
    upstream = to_edge_transform_and_lower(
        aten.artifact["forward"],
        partitioner=[XnnpackDynamicallyQuantizedPartitioner(), XnnpackPartitioner()],
        compile_config=BUILDER_EDGE.compile_config(),
    )
    ours = PassManager([BUILDER_ET]).run(lowered_mlp.program).program
    theirs = BUILDER_ET.apply(Program(Level.EDGE, upstream, aten.example_inputs)).program
    assert (
        views.dump(Program(Level.EDGE, upstream, {})).splitlines()[2:]
        == views.dump(lowered_mlp.program).splitlines()[2:]
    )
    assert ours.artifact.buffer == theirs.artifact.buffer


def test_final_check_refuses_a_kept_op_left_outside_every_delegate(aten_mlp):
    """What to_edge_transform_and_lower raises: linear kept whole for XNNPACK, not lowered."""
    ctx = PassContext(upcoming=(PartitionXnnpackPass(),))
    edge = ToEdgePass().apply(aten_mlp, ctx).program
    partitioner = PartitionXnnpackPass().make_partitioner()
    with pytest.raises(InvariantError, match=r"aten\.linear.*was not decomposed or delegated"):
        check_lowered(edge, [partitioner])


def test_options_are_checked():
    with pytest.raises(OptionError, match=r"partition-xnnpack\.enable_bf16"):
        PartitionXnnpackPass(enable_bf16=1)
    assert PartitionXnnpackPass().describe() == "partition-xnnpack"
    assert (
        PartitionXnnpackPass(enable_bf16=True).describe() == "partition-xnnpack{enable_bf16=true}"
    )


def test_contract():
    info = PartitionXnnpackPass.info
    assert (info.level_in, info.level_out) == (Level.EDGE, Level.EDGE)
    assert info.ordered and info.delegation == "xnnpack"
    assert info.provides == {DELEGATED_XNNPACK, TORCHAO_LINEARS_DELEGATED}


def test_refused_on_an_edge_program_built_without_asking_it(aten_mlp):
    """The to_edge() + to_backend() trap: to-edge never heard of this partitioner."""
    from pteflow.ir.errors import PipelineError
    from pteflow.passes.partition.lowering import CONSULTED

    edge = ToEdgePass().apply(aten_mlp).program
    asked_other = edge.evolve(metadata={CONSULTED: (PartitionXnnpackDqPass(),)})
    with pytest.raises(PipelineError, match="built without asking this partitioner"):
        PartitionXnnpackPass().apply(asked_other)
