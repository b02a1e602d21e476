"""convert-to-linear on torchao 8da4w linears: the fact that guards it, and what emit does
with the unrunnable program it made before the guard (issue 10)."""

from __future__ import annotations

import pytest
import torch

from pteflow.backends.xnnpack.convert_to_linear import ConvertToLinearPass
from pteflow.backends.xnnpack.partition_xnnpack_dq import PartitionXnnpackDqPass
from pteflow.ir import Level, Program
from pteflow.ir.errors import PipelineError
from pteflow.ir.facts_quant import TORCHAO_LINEARS_DELEGATED, check_torchao_linears_delegated
from pteflow.ir.runnable import RuntimeLoadError
from pteflow.passes import PassContext, PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.convert.to_executorch import ToExecutorchPass
from pteflow.passes.emit.emit import EmitPass
from pteflow.passes.quantize.quantize_8da4w import Quantize8da4wPass

QUANT = Quantize8da4wPass(group_size=32)  # XNNPACK lowers multiples of 32 only


def mlp() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))
    return module.eval(), (torch.randn(2, 32),)


def _edge(*extra) -> Program:
    module, inputs = mlp()
    passes = [QUANT, TorchExportPass(), ToEdgePass(check_ir_validity=False), *extra]
    return PassManager(passes, verify="off").run(Program.eager(module, inputs)).program


@pytest.fixture(scope="module")
def unpartitioned() -> Program:
    return _edge()


@pytest.fixture(scope="module")
def partitioned() -> Program:
    return _edge(PartitionXnnpackDqPass())


@pytest.fixture(scope="module")
def broken() -> Program:
    """Read by the checker test first, then lowered by the emit test."""
    return _upstream_convert(_edge())


def _upstream_convert(program: Program) -> Program:
    """What convert-to-linear did before the guard: XNNPACK's pass, unchecked."""
    from executorch.backends.xnnpack._passes.convert_to_linear import (
        ConvertToLinearPass as Upstream,
    )

    return program.evolve(artifact=program.artifact.transform([Upstream()]))


def test_the_fact_fails_on_an_unpartitioned_8da4w_graph_and_holds_after_partitioning(
    unpartitioned, partitioned
):
    module, inputs = mlp()
    assert check_torchao_linears_delegated(Program.eager(module, inputs)) is None
    quantized = QUANT.apply(Program.eager(module, inputs)).program
    assert "torchao weight" in (check_torchao_linears_delegated(quantized) or "")
    why = check_torchao_linears_delegated(unpartitioned)
    assert why is not None and "torchao.dequantize_affine" in why
    assert check_torchao_linears_delegated(partitioned) is None
    assert TORCHAO_LINEARS_DELEGATED in partitioned.facts


def test_the_fact_sees_the_integer_weight_convert_to_linear_left(broken):
    assert "integer (torch.int8) weight" in (check_torchao_linears_delegated(broken) or "")


def test_convert_to_linear_alone_refuses_an_unpartitioned_8da4w_program(unpartitioned):
    with pytest.raises(PipelineError, match="torchao-linears.delegated"):
        ConvertToLinearPass().apply(unpartitioned)


def test_convert_to_linear_runs_after_the_partitioner_took_the_8da4w_linears(partitioned):
    result = ConvertToLinearPass().apply(partitioned)
    assert check_torchao_linears_delegated(result.program) is None


def test_emit_writes_nothing_when_the_smoke_run_fails(broken, tmp_path):
    """The .pte main wrote with exit 0: it loads, then aten::linear.out fails on int8."""
    with pytest.raises(PipelineError, match="torchao-linears.delegated"):
        ToExecutorchPass().apply(broken)  # the contract refuses it; bypass it with run()
    program = ToExecutorchPass().run(broken, PassContext()).program
    assert program.level == Level.EXECUTORCH
    out = tmp_path / "x.pte"
    with pytest.raises(RuntimeLoadError, match=r"execute method 'forward'.*aten::linear\.out") as e:
        EmitPass(path=str(out)).apply(program)
    # the runtime's telling lines, on one line: not its whole log
    assert "dtype={Float, Char, Float}" in str(e.value) and "\n" not in str(e.value)
    assert "cpuinfo" not in str(e.value)
    assert list(tmp_path.iterdir()) == []
    # the user's opt-out: only loading is checked, and the method loads
    EmitPass(path=str(out), smoke=False).apply(program)
    assert out.exists()


def test_emit_smoke_option_must_be_a_bool():
    with pytest.raises(ValueError, match="emit.smoke: must be true or false"):
        EmitPass(smoke="no")  # type: ignore[arg-type]
