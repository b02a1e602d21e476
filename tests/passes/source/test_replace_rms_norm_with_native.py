from __future__ import annotations

import pytest
import torch

from pteflow.driver.models import tiny_llama as build_tiny_llama
from pteflow.ir import Program, facts
from pteflow.ir.errors import ModelError
from pteflow.passes import PassManager
from pteflow.passes.source.replace_rms_norm_with_native import ReplaceRmsNormWithNativePass
from tests.models import mlp

from ._helpers import (
    assert_decode_equal,
    assert_unchanged,
    aten_ops,
    class_counts,
    export_aten,
    run,
    snapshot,
)


def test_replaces_every_norm_keeping_weight_and_eps(tiny_llama):
    from executorch.examples.models.llama.norm import RMSNorm

    before = {
        n: (m.weight.clone(), m.eps)
        for n, m in tiny_llama.program.modules()["forward"].named_modules()
        if isinstance(m, RMSNorm)
    }
    result = run([ReplaceRmsNormWithNativePass()], tiny_llama)
    assert result.records[0].modified
    counts = class_counts(result.program)
    assert counts[RMSNorm] == 0 and counts[torch.nn.RMSNorm] == 5  # 2 per layer + final
    after = dict(result.program.modules()["forward"].named_modules())
    for name, (weight, eps) in before.items():
        assert isinstance(after[name], torch.nn.RMSNorm) and after[name].eps == eps
        torch.testing.assert_close(after[name].weight, weight)
    assert facts.RMSNORM_NATIVE in result.program.facts


def test_second_run_changes_nothing(tiny_llama):
    first = run([ReplaceRmsNormWithNativePass()], tiny_llama)
    again = PassManager([ReplaceRmsNormWithNativePass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_decode_outputs_equal_the_reference(tiny_llama):
    result = run([ReplaceRmsNormWithNativePass()], tiny_llama)
    assert_decode_equal(result.program, tiny_llama)


def test_unit_offset_norms_refused():
    model = build_tiny_llama(rms_norm_add_unit_offset=True)
    with pytest.raises(ModelError, match=r"scales by \(1 \+ weight\) \(add_unit_offset\)"):
        ReplaceRmsNormWithNativePass().apply(model.program)


def test_model_without_rms_norm_refused():
    module, inputs = mlp()
    with pytest.raises(ModelError, match=r"has no ExecuTorch RMSNorm module"):
        ReplaceRmsNormWithNativePass().apply(Program.eager(module, inputs))


def test_native_rms_norm_checker_rejects_the_hand_written_norm(tiny_llama):
    assert facts.RMSNORM_NATIVE.check(tiny_llama.program) is not None


@pytest.mark.slow
def test_exported_graph_calls_rms_norm(tiny_llama):
    result = run([ReplaceRmsNormWithNativePass()], tiny_llama)
    ops = aten_ops(export_aten(result.program))
    assert ops[torch.ops.aten.rms_norm.default] == 5
    assert ops[torch.ops.aten.rsqrt.default] == 0


def test_input_program_left_intact(tiny_llama):
    before = snapshot(tiny_llama.program)
    result = run([ReplaceRmsNormWithNativePass()], tiny_llama)
    assert result.program.modules()["forward"] is not tiny_llama.program.modules()["forward"]
    assert_unchanged(tiny_llama.program, before)
