"""Facts and their checkers on real graphs."""

from __future__ import annotations

import pytest

from pteflow.ir import Fact, Level, facts


def test_facts_compare_by_name():
    assert Fact("x", "one meaning") == Fact("x", "another")
    assert len({Fact("x", "a"), Fact("x", "b")}) == 1


def test_a_fact_name_must_be_a_word():
    with pytest.raises(ValueError, match="non-empty word"):
        Fact("two words", "no")


def test_quantized_checker_fails_on_a_float_graph(aten_mlp, edge_mlp):
    for program in (aten_mlp, edge_mlp):
        why = facts.QUANTIZED_PT2E.check(program)
        assert why is not None and "no op matching" in why


def test_quantized_checker_passes_on_a_pt2e_quantized_graph():
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from pteflow.ir import Program
    from tests.models import mlp

    module, inputs = mlp()
    gm = torch.export.export(module, inputs).module()
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config())
    prepared = prepare_pt2e(gm, quantizer)
    prepared(*inputs)
    converted = convert_pt2e(prepared)
    ep = torch.export.export(converted, inputs)
    program = Program(Level.ATEN, {"forward": ep}, {"forward": inputs})
    assert facts.QUANTIZED_PT2E.check(program) is None


def test_delegated_checker_sees_no_delegate_in_a_plain_edge_program(edge_mlp):
    assert "no delegate" in (facts.DELEGATED.check(edge_mlp) or "")
    assert (
        facts.DELEGATED.check(
            edge_mlp.evolve(level=Level.ATEN, artifact=edge_mlp.exported_programs())
        )
        is None
    )


def test_op_name_is_stable_for_aten_and_edge_ops():
    import torch
    from executorch.exir.dialects._ops import ops as exir_ops

    assert facts.op_name(torch.ops.aten.mm.default) == "aten.mm.default"
    assert facts.op_name(exir_ops.edge.aten.mm.default) == "aten.mm.default"
    assert facts.op_name(torch.ops.aten.add.Tensor) == "aten.add.Tensor"
