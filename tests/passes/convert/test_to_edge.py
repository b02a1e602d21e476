from __future__ import annotations

from collections import Counter

import torch

from pteflow import testing
from pteflow.ir import Level, facts
from pteflow.passes.convert.to_edge import ToEdgePass

from ...models import mlp


def test_to_edge_decomposes_to_edge_ops_and_matches(aten_mlp):
    from executorch.exir.dialects._ops import ops as exir_ops

    run = testing.run_pass(ToEdgePass(), aten_mlp)
    assert run.modified
    run.assert_op_delta(
        {
            torch.ops.aten.linear.default: -2,
            exir_ops.edge.aten.addmm.default: 2,
            exir_ops.edge.aten.permute_copy.default: 2,
        }
    )
    run.assert_outputs_unchanged()


def test_relaxed_ir_checks_provide_the_fact_the_compile_config_says(aten_mlp):
    strict = ToEdgePass()
    relaxed = ToEdgePass(check_ir_validity=False)
    assert facts.EDGE_IR_RELAXED not in strict.contract.provides
    assert facts.EDGE_IR_RELAXED in relaxed.contract.provides
    out = relaxed.apply(aten_mlp).program
    assert out.artifact.compile_config._check_ir_validity is False
    assert facts.EDGE_IR_RELAXED in out.facts


def test_scalar_metadata_becomes_constant_methods(aten_mlp):
    program = aten_mlp.evolve(
        metadata={"get_max_seq_len": 128, "_private": 1, "tensor": torch.ones(1)}
    )
    out = ToEdgePass().apply(program).program
    assert "get_max_seq_len" in out.artifact._config_methods
    assert "_private" not in out.artifact._config_methods
    assert "tensor" not in out.artifact._config_methods
    assert ToEdgePass(constant_methods=False).apply(
        aten_mlp.evolve(metadata={"get_max_seq_len": 128})
    ).program.artifact._config_methods in (None, {})


def _count_decompositions(monkeypatch) -> list[dict]:
    """Records each ExportedProgram.run_decompositions call (behaviour unchanged)."""
    from torch.export import ExportedProgram

    calls: list[dict] = []
    real = ExportedProgram.run_decompositions

    def counting(self, *args, **kwargs):
        calls.append({"args": args, "kwargs": kwargs})
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ExportedProgram, "run_decompositions", counting)
    return calls


def _edge_ops(program) -> Counter:
    return Counter(
        str(n.target)
        for ep in program.exported_programs().values()
        for n in ep.graph.nodes
        if n.op == "call_function"
    )


def test_keep_whole_skips_retraces_that_change_nothing(aten_mlp, monkeypatch):
    """With partitioners consulted, to-edge must not re-trace a program that is already
    functional, nor re-decompose when no table op is left: upstream's
    ``_gen_edge_manager_for_partitioners`` does both (3 traces on this program, seconds
    each on a Llama), for the same Edge program."""
    from executorch.exir.program._program import _gen_edge_manager_for_partitioners

    from pteflow.passes.partition.keep_whole import partition_passes

    assert aten_mlp.exported_programs()["forward"].dialect == "ATEN"  # already functional
    edge_pass = ToEdgePass(keep_whole_for=("partition-xnnpack",))
    calls = _count_decompositions(monkeypatch)
    run = testing.run_pass(edge_pass, aten_mlp)
    assert calls == []
    run.assert_outputs_unchanged()

    # Same graph as upstream's own step on a fresh copy of the same program.
    module, inputs = mlp()
    fresh = testing.build_program(module, inputs, level=Level.ATEN)
    calls.clear()
    partitioners = [p.make_partitioner() for p in partition_passes(edge_pass.keep_whole_for)]
    with torch.no_grad():
        upstream = _gen_edge_manager_for_partitioners(
            {"forward": partitioners},
            fresh.exported_programs(),
            edge_pass.compile_config(),
            None,
        )
    assert len(calls) == 3  # what the skip saves
    theirs = Counter(
        str(n.target)
        for n in upstream.exported_program("forward").graph.nodes
        if n.op == "call_function"
    )
    assert _edge_ops(run.after) == theirs


class _DynamicRows(torch.nn.Module):
    """A linear, then a reshape by the input's (dynamic) sizes: ``aten.sym_size.int``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(self.fc(x)).reshape(x.shape[0] * x.shape[1], 8)


def _dynamic_rows_program():
    module = _DynamicRows().eval()
    inputs = (torch.randn(1, 5, 8),)
    shapes = ({1: torch.export.Dim("t", min=1, max=16)},)
    return testing.build_program(module, inputs, level=Level.ATEN, dynamic_shapes=shapes)


def test_keep_whole_does_not_retrace_for_sym_size_alone(monkeypatch):
    """A dynamic dimension puts ``aten.sym_size.int`` in the graph, and the default table
    lists it; a re-trace only emits it again, so the full-table decomposition after the
    partitioner's is skipped (seconds on a Llama, whose sequence length is dynamic): one
    decomposition instead of upstream's three, and the same Edge graph."""
    from executorch.exir.program._program import _gen_edge_manager_for_partitioners

    from pteflow.passes.partition.keep_whole import partition_passes

    program = _dynamic_rows_program()
    ops = {n.target for n in program.exported_programs()["forward"].graph.nodes}
    assert torch.ops.aten.sym_size.int in ops  # what this test is about
    edge_pass = ToEdgePass(keep_whole_for=("partition-xnnpack",))
    calls = _count_decompositions(monkeypatch)
    run = testing.run_pass(edge_pass, program)
    assert len(calls) == 1  # silu's decomposition; not a second one for sym_size
    run.assert_outputs_unchanged()
    longer = [torch.randn(1, 11, 8)]  # still dynamic
    torch.testing.assert_close(testing.outputs(run.after, longer), testing.outputs(program, longer))

    partitioners = [p.make_partitioner() for p in partition_passes(edge_pass.keep_whole_for)]
    calls.clear()
    with torch.no_grad():
        upstream = _gen_edge_manager_for_partitioners(
            {"forward": partitioners},
            _dynamic_rows_program().exported_programs(),
            edge_pass.compile_config(),
            None,
        )
    assert len(calls) >= 3  # what the skip saves
    theirs = upstream.exported_program("forward").graph
    ours = run.after.exported_programs()["forward"].graph
    assert [(n.op, str(n.target)) for n in ours.nodes] == [
        (n.op, str(n.target)) for n in theirs.nodes
    ]


def test_keep_whole_still_functionalizes_a_training_ir_program(monkeypatch):
    """A program straight from torch.export (training IR, in-place ops) is functionalized."""
    module, inputs = mlp()
    program = testing.build_program(module, inputs, level=Level.EAGER)
    with torch.no_grad():
        ep = torch.export.export(module, inputs)
    assert ep.dialect == "TRAINING"
    aten = program.evolve(level=Level.ATEN, artifact={"forward": ep})
    calls = _count_decompositions(monkeypatch)
    run = testing.run_pass(ToEdgePass(keep_whole_for=("partition-xnnpack",)), aten)
    assert [c["args"] for c in calls][:1] == [({},)]
    run.assert_outputs_unchanged()
