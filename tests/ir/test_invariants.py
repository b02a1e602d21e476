"""Level invariants on real small graphs."""

from __future__ import annotations

import pytest
import torch

from pteflow.ir import Level, Program, invariants
from pteflow.ir.errors import InvariantError


def test_every_level_of_a_real_program_passes(eager_mlp, aten_mlp, edge_mlp, executorch_mlp):
    for program in (eager_mlp, aten_mlp, edge_mlp, executorch_mlp):
        invariants.check_level(program)


def test_eager_rejects_a_method_that_is_not_a_module(eager_mlp):
    bad = eager_mlp.evolve(artifact={"forward": lambda x: x})
    with pytest.raises(InvariantError, match="'forward' is a function, not a torch.nn.Module"):
        invariants.check_level(bad)


def test_aten_rejects_call_module(aten_mlp):
    gm = aten_mlp.exported_programs()["forward"].graph_module
    gm.add_submodule("extra", torch.nn.Identity())
    out = next(n for n in gm.graph.nodes if n.op == "output")
    with gm.graph.inserting_before(out):
        gm.graph.call_module("extra", (out.args[0][0],))
    with pytest.raises(InvariantError, match="calls module 'extra'"):
        invariants.check_level(aten_mlp)


def test_aten_rejects_a_node_without_val(aten_mlp):
    gm = aten_mlp.exported_programs()["forward"].graph_module
    node = next(n for n in gm.graph.nodes if n.op == "call_function")
    del node.meta["val"]
    with pytest.raises(InvariantError, match=rf"node {node.name} .* has no meta\['val'\]"):
        invariants.check_level(aten_mlp)


def test_aten_rejects_a_graph_that_fails_lint(aten_mlp):
    gm = aten_mlp.exported_programs()["forward"].graph_module
    relu = next(n for n in gm.graph.nodes if n.target == torch.ops.aten.relu.default)
    first = next(n for n in gm.graph.nodes if n.op == "call_function")
    # use a value before it is defined: move relu's user above relu
    user = next(iter(relu.users))
    first.prepend(user)
    with pytest.raises(InvariantError, match="lint"):
        invariants.check_level(aten_mlp)


def test_aten_rejects_a_non_exported_program():
    bad = Program(Level.ATEN, {"forward": torch.nn.Linear(2, 2)}, {"forward": ()})
    with pytest.raises(InvariantError, match="not a torch.export.ExportedProgram"):
        invariants.check_level(bad)


def test_edge_rejects_an_aten_op_outside_delegates():
    from pteflow.testing import build_program
    from tests.models import mlp

    module, inputs = mlp()
    program = build_program(module, inputs, level=Level.EDGE)
    gm = program.exported_programs()["forward"].graph_module
    node = next(n for n in gm.graph.nodes if n.op == "call_function")
    node.target = torch.ops.aten.relu.default  # an ATen op, not an edge op
    with pytest.raises(
        InvariantError,
        match=rf"node {node.name} calls aten.relu.default, "
        "which is not an edge-dialect op",
    ):
        invariants.check_level(program)


def test_edge_runs_executorch_verifier_on_non_core_edge_ops():
    from executorch.exir.dialects._ops import ops as exir_ops

    from pteflow.testing import build_program
    from tests.models import mlp

    module, inputs = mlp()
    program = build_program(module, inputs, level=Level.EDGE)
    gm = program.exported_programs()["forward"].graph_module
    node = next(n for n in gm.graph.nodes if n.op == "call_function" and "relu" in str(n.target))
    # an edge op that is not core ATen: only legal when the program relaxed IR checks
    node.target = exir_ops.edge.aten.linear.default
    node.args = (node.args[0], node.args[0])
    with pytest.raises(InvariantError, match="ExecuTorch's edge verifier"):
        invariants.check_level(program)


def test_executorch_rejects_an_edge_manager(edge_mlp):
    with pytest.raises(InvariantError, match="not an ExecutorchProgramManager"):
        invariants.check_level(edge_mlp.evolve(level=Level.EXECUTORCH))
