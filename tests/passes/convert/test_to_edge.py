from __future__ import annotations

import torch

from pteflow import testing
from pteflow.ir import facts
from pteflow.passes.convert.to_edge import ToEdgePass


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
