from __future__ import annotations

import operator

import pytest
import torch

from pteflow import testing
from pteflow.backends.xnnpack.facts import DELEGATED_XNNPACK
from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.backends.xnnpack.partition_xnnpack_dq import PartitionXnnpackDqPass
from pteflow.ir import Level, views
from pteflow.ir.errors import OptionError
from pteflow.ir.facts_quant import TORCHAO_LINEARS_DELEGATED
from pteflow.passes import PassManager
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.convert.to_executorch import ToExecutorchPass
from pteflow.passes.partition.lowering import LOWERED_BY
from pteflow.passes.policy import delegation_of

from ...models import mlp


def _delegate_op():
    from executorch.exir.delegate import executorch_call_delegate

    return executorch_call_delegate


def test_to_edge_keeps_linear_whole_for_the_upcoming_partitioner(aten_mlp):
    from executorch.exir.dialects._ops import ops as exir_ops

    to_edge = ToEdgePass(keep_whole_for=(PartitionXnnpackDqPass().spec(),))
    kept = views.op_histogram(to_edge.apply(aten_mlp).program)
    assert kept[exir_ops.edge.aten.linear.default] == 2
    assert kept[exir_ops.edge.aten.addmm.default] == 0


@pytest.mark.slow
def test_takes_the_whole_mlp_and_the_record_says_so(lowered_mlp):
    dq, general = lowered_mlp.records[2:]
    assert (dq.name, dq.modified) == ("partition-xnnpack-dq", True)
    # linear, relu, linear: every op of the MLP went into the delegate
    assert dq.delegated == {"XnnpackBackend": 3}
    assert "delegated.xnnpack" in dq.facts_gained
    # the general partitioner comes second and finds nothing left
    assert (general.modified, general.delegated) == (False, {})
    program = lowered_mlp.program
    assert views.op_histogram(program) == {_delegate_op(): 1, operator.getitem: 1}
    assert [d.backend_id for d in views.delegation_summary(program)] == ["XnnpackBackend"]
    assert DELEGATED_XNNPACK in program.facts
    assert DELEGATED_XNNPACK.check(program) is None
    assert [type(p) for p in program.metadata[LOWERED_BY]] == [
        PartitionXnnpackDqPass,
        PartitionXnnpackPass,
    ]


@pytest.mark.slow
def test_outputs_equal_eager_at_edge_and_in_the_runtime(lowered_mlp):
    module, (x,) = mlp()
    with torch.no_grad():
        want = module(x)
    (edge_out,) = testing.outputs(lowered_mlp.program, (x,))
    torch.testing.assert_close(edge_out, want)
    et = PassManager([ToExecutorchPass()]).run(lowered_mlp.program).program
    assert et.level == Level.EXECUTORCH
    (rt_out,) = testing.outputs(et, (x,))
    torch.testing.assert_close(rt_out, want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_keeps_the_to_edge_compile_config(lowered_mlp):
    # EdgeProgramManager.to_backend resets it to EdgeCompileConfig(_check_ir_validity=False)
    config = lowered_mlp.program.artifact.compile_config
    assert config._skip_dim_order is True
    assert config._check_ir_validity is False


def test_options_are_checked_and_reach_the_partitioner():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
        XnnpackDynamicallyQuantizedPartitioner,
    )

    with pytest.raises(
        OptionError,
        match=r"partition-xnnpack-dq\.enable_bf16: must be true or "
        r"false, got 'yes'",
    ):
        PartitionXnnpackDqPass(enable_bf16="yes")
    p = PartitionXnnpackDqPass(enable_bf16=True).make_partitioner()
    assert type(p) is XnnpackDynamicallyQuantizedPartitioner
    assert all(c.enable_bf16 for c in p.target_partitioner_configs.values())
    assert not any(
        c.enable_bf16
        for c in PartitionXnnpackDqPass().make_partitioner().target_partitioner_configs.values()
    )


def test_contract():
    info = PartitionXnnpackDqPass.info
    assert (info.level_in, info.level_out) == (Level.EDGE, Level.EDGE)
    assert info.ordered and delegation_of(PartitionXnnpackDqPass) == "xnnpack"
    assert info.provides == {DELEGATED_XNNPACK, TORCHAO_LINEARS_DELEGATED}
    assert PartitionXnnpackDqPass().unavailable_reason() is None
