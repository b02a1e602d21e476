from __future__ import annotations

import pytest
import torch

from pteflow.backends.qnn.facts import LINEAR_CONV2D
from pteflow.backends.qnn.qnn_convert_linear_to_conv2d import QnnConvertLinearToConv2dPass
from pteflow.backends.qnn.split_mha_to_sha import SplitMhaToShaPass
from pteflow.ir import Program
from pteflow.ir.errors import ModelError
from pteflow.passes import PassManager
from tests.passes.source._helpers import (
    assert_decode_equal,
    assert_unchanged,
    aten_ops,
    export_aten,
    run,
    snapshot,
)


def _count(program: Program, name: str) -> int:
    return sum(type(m).__name__ == name for m in program.modules()["forward"].modules())


def test_every_linear_becomes_a_1x1_conv(tiny_llama):
    result = run([QnnConvertLinearToConv2dPass()], tiny_llama)
    assert result.records[0].modified
    # per layer: wq wk wv wo + w1 w2 w3; plus the output projection
    assert _count(result.program, "Conv2D") == 2 * 7 + 1
    assert _count(result.program, "Linear") == 0
    assert LINEAR_CONV2D in result.program.facts


def test_decode_outputs_equal_the_reference(tiny_llama):
    result = run([QnnConvertLinearToConv2dPass()], tiny_llama)
    assert_decode_equal(result.program, tiny_llama)


def test_runs_after_the_sha_split_which_splits_linears(tiny_llama):
    result = run([QnnConvertLinearToConv2dPass(), SplitMhaToShaPass()], tiny_llama)
    assert [r.name for r in result.records] == ["split-mha-to-sha", "qnn-convert-linear-to-conv2d"]
    # per layer: 4 q heads + 2 k + 2 v + wo + 3 feed-forward; plus the output projection
    assert _count(result.program, "Conv2D") == 2 * 12 + 1
    assert_decode_equal(result.program, tiny_llama)


def test_second_run_changes_nothing(tiny_llama):
    first = run([QnnConvertLinearToConv2dPass()], tiny_llama)
    again = PassManager([QnnConvertLinearToConv2dPass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_input_program_left_intact(tiny_llama):
    before = snapshot(tiny_llama.program)
    run([QnnConvertLinearToConv2dPass()], tiny_llama)
    assert_unchanged(tiny_llama.program, before)


def test_model_without_linear_refused():
    module = torch.nn.Sequential(torch.nn.ReLU())
    with pytest.raises(ModelError, match=r"has no nn\.Linear layer to convert"):
        QnnConvertLinearToConv2dPass().apply(Program.eager(module, (torch.ones(2),)))


@pytest.mark.slow
def test_exported_graph_has_convolutions_not_linears(tiny_llama):
    result = run([QnnConvertLinearToConv2dPass()], tiny_llama)
    aten = export_aten(result.program)
    ops = aten_ops(aten)
    assert ops[torch.ops.aten.conv2d.default] + ops[torch.ops.aten.convolution.default] == 15
    assert ops[torch.ops.aten.linear.default] == 0
    assert LINEAR_CONV2D.check(aten) is None
