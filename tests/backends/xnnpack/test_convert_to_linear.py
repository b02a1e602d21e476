from __future__ import annotations

import pytest
import torch

from pteflow import testing
from pteflow.backends.xnnpack.convert_to_linear import (
    LINEAR_CANONICAL,
    ConvertToLinearPass,
    check_linear_canonical,
)
from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.backends.xnnpack.partition_xnnpack_dq import PartitionXnnpackDqPass
from pteflow.ir import Level, Program, facts, views
from pteflow.ir.errors import PipelineError, UnsatisfiedError
from pteflow.ir.facts_quant import TORCHAO_LINEARS_DELEGATED
from pteflow.passes import PassManager, plan
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.convert.to_executorch import ToExecutorchPass
from pteflow.passes.emit.emit import EmitPass
from pteflow.passes.policy import delegation_of

from ...models import mlp

RELAXED = ToEdgePass(check_ir_validity=False)


def _edge_ops():
    from executorch.exir.dialects._ops import ops as exir_ops

    e = exir_ops.edge.aten
    return e.linear.default, e.addmm.default, e.permute_copy.default


class MixedPrecision(torch.nn.Module):
    """An fp32 linear XNNPACK takes and a float64 linear it declines."""

    def __init__(self) -> None:
        super().__init__()
        self.fc32 = torch.nn.Linear(8, 8)
        self.fc64 = torch.nn.Linear(8, 4).to(torch.float64)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.relu(self.fc32(x)), self.fc64(y)


def mixed() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    return MixedPrecision().eval(), (torch.randn(2, 8), torch.randn(3, 8, dtype=torch.float64))


@pytest.fixture
def relaxed_edge_mlp(aten_mlp) -> Program:
    return RELAXED.apply(aten_mlp).program


# --------------------------------------------------------------------------- the rewrite


def test_fuses_each_decomposed_linear_and_keeps_outputs(relaxed_edge_mlp):
    linear, addmm, permute = _edge_ops()
    run = testing.run_pass(ConvertToLinearPass(), relaxed_edge_mlp)
    assert run.modified
    assert run.op_delta() == {linear: 2, addmm: -2, permute: -2}
    run.assert_outputs_unchanged()  # linear and addmm round differently (~1e-7)
    assert facts.LINEAR_CANONICAL in run.after.facts


def test_second_run_changes_nothing(relaxed_edge_mlp):
    once = ConvertToLinearPass().apply(relaxed_edge_mlp).program
    twice = ConvertToLinearPass().apply(once)
    assert not twice.modified
    assert twice.program.artifact is once.artifact


def test_checker_sees_the_decomposed_linear_and_not_the_fused_one(relaxed_edge_mlp, aten_mlp):
    why = check_linear_canonical(relaxed_edge_mlp)
    assert why is not None and "aten.addmm.default" in why and "transposed weight" in why
    assert check_linear_canonical(aten_mlp) is None  # aten.linear is still whole at ATEN
    fused = ConvertToLinearPass().apply(relaxed_edge_mlp).program
    assert check_linear_canonical(fused) is None
    assert LINEAR_CANONICAL == facts.LINEAR_CANONICAL  # same fact, with a checker


@pytest.mark.slow
def test_linear_xnnpack_declines_is_fused_outside_the_delegate():
    linear, addmm, permute = _edge_ops()
    module, inputs = mixed()
    passes = [
        TorchExportPass(),
        RELAXED,
        PartitionXnnpackDqPass(),
        PartitionXnnpackPass(),
        ConvertToLinearPass(),
    ]
    run = PassManager(passes, verify="each").run(Program.eager(module, inputs))
    records = {r.name: r for r in run.records}
    # only the fp32 linear (and its relu) is delegated; the float64 one is left decomposed
    assert records["partition-xnnpack-dq"].delegated == {"XnnpackBackend": 2}
    assert records["partition-xnnpack"].delegated == {}
    assert records["convert-to-linear"].modified
    hist = views.op_histogram(run.program)
    assert (hist[linear], hist[addmm], hist[permute]) == (1, 0, 0)
    with torch.no_grad():
        want = module(*inputs)
    for got, ref in zip(testing.outputs(run.program, inputs), want, strict=True):
        torch.testing.assert_close(got, ref)


@pytest.mark.slow
def test_runtime_outputs_match_eager_after_constant_propagation(relaxed_edge_mlp):
    module, (x,) = mlp()
    with torch.no_grad():
        want = module(x)
    passes = [ConvertToLinearPass(), ToExecutorchPass(alloc_graph_input=False, const_prop=True)]
    run = PassManager(passes).run(relaxed_edge_mlp)
    assert run.program.level == Level.EXECUTORCH
    (got,) = testing.outputs(run.program, (x,))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- the contract


def test_refused_without_relaxed_edge_ir():
    with pytest.raises(
        UnsatisfiedError,
        match=r"convert-to-linear#2 requires fact "
        r"'edge.ir-relaxed'",
    ):
        plan([TorchExportPass(), ToEdgePass(), ConvertToLinearPass(), ToExecutorchPass()])
    plan([TorchExportPass(), RELAXED, ConvertToLinearPass(), ToExecutorchPass()])


def test_runs_after_partitioning_and_before_constant_propagation():
    listed = [
        EmitPass(),
        ToExecutorchPass(const_prop=True),
        ConvertToLinearPass(),
        PartitionXnnpackPass(),
        PartitionXnnpackDqPass(),
        RELAXED,
        TorchExportPass(),
    ]
    names = [p.name for p in plan(listed).ordered_passes()]
    assert names == [
        "export",
        "to-edge",
        "partition-xnnpack",
        "partition-xnnpack-dq",
        "convert-to-linear",
        "to-executorch",
        "emit",
    ]


def test_refuses_a_program_whose_constants_are_already_propagated(relaxed_edge_mlp):
    folded = relaxed_edge_mlp.with_facts(gained={facts.CONST_PROPAGATED})
    with pytest.raises(PipelineError, match="must run before constant propagation"):
        ConvertToLinearPass().apply(folded)


def test_contract():
    info = ConvertToLinearPass.info
    assert (info.level_in, info.level_out) == (Level.EDGE, Level.EDGE)
    assert info.requires == {facts.EDGE_IR_RELAXED, TORCHAO_LINEARS_DELEGATED}
    assert info.provides == {facts.LINEAR_CANONICAL}
    assert ToExecutorchPass in info.before
    assert delegation_of(ConvertToLinearPass) is None  # the portable flow needs it too


def test_no_retrace_when_every_linear_is_delegated(relaxed_edge_mlp, aten_mlp, monkeypatch):
    """All linears inside the delegate: the pass changes nothing and skips upstream's
    whole-program re-trace (EdgeProgramManager.transform)."""
    from executorch.exir import EdgeProgramManager

    passes = [ToEdgePass(check_ir_validity=False), PartitionXnnpackPass()]
    delegated = PassManager(passes).run(aten_mlp).program
    assert views.op_histogram(delegated).get(_edge_ops()[1], 0) == 0  # no addmm outside
    calls = []
    real = EdgeProgramManager.transform
    monkeypatch.setattr(
        EdgeProgramManager,
        "transform",
        lambda self, *a, **k: calls.append(1) or real(self, *a, **k),
    )
    run = ConvertToLinearPass().apply(delegated)
    assert not run.modified and run.program.artifact is delegated.artifact and calls == []
    assert check_linear_canonical(run.program) is None
    # with a linear left outside, the pass still runs upstream's rewrite
    assert ConvertToLinearPass().apply(relaxed_edge_mlp).modified and calls == [1]
