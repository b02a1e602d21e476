from __future__ import annotations

import math

import pytest
import torch

from pteflow.backends.qnn.qnn_replace_causal_mask import QnnReplaceCausalMaskPass
from pteflow.ir import Program
from pteflow.ir.errors import ModelError, OptionError
from pteflow.ir.facts import MASK_ADDITIVE
from pteflow.passes import PassManager
from tests.models import mlp
from tests.passes.source._helpers import assert_decode_equal, assert_unchanged, run, snapshot


def _masks(program: Program) -> list[torch.Tensor]:
    module = program.modules()["forward"]
    return [b for n, b in module.named_buffers() if n.rsplit(".", 1)[-1] == "mask"]


def test_masks_become_additive_with_the_same_pattern(tiny_llama):
    bool_masks = _masks(tiny_llama.program)
    result = run([QnnReplaceCausalMaskPass()], tiny_llama)
    assert result.records[0].modified
    masks = _masks(result.program)
    assert len(masks) == len(bool_masks) == 2
    for new, old in zip(masks, bool_masks, strict=True):
        assert new.dtype == torch.float32
        assert torch.equal(new == 0, old) and torch.all(new[~old] == -255.0)
    assert MASK_ADDITIVE in result.program.facts
    assert MASK_ADDITIVE.check(tiny_llama.program) is not None  # the bool masks fail it


def test_decode_outputs_equal_the_reference(tiny_llama):
    """SDPA adds a float mask where it drops masked scores for a bool one: same softmax."""
    result = run([QnnReplaceCausalMaskPass()], tiny_llama)
    assert_decode_equal(result.program, tiny_llama)


def test_minus_inf_is_upstreams_mask(tiny_llama):
    result = run([QnnReplaceCausalMaskPass(mask_value=-math.inf)], tiny_llama)
    mask = _masks(result.program)[0]
    expected = torch.triu(torch.full(mask.shape, float("-inf")), diagonal=1)
    assert torch.equal(mask, expected)  # what ExecuTorch's replace_causal_mask builds
    assert_decode_equal(result.program, tiny_llama)


def test_second_run_changes_nothing(tiny_llama):
    first = run([QnnReplaceCausalMaskPass()], tiny_llama)
    again = PassManager([QnnReplaceCausalMaskPass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_input_program_left_intact(tiny_llama):
    before = snapshot(tiny_llama.program)
    run([QnnReplaceCausalMaskPass()], tiny_llama)
    assert_unchanged(tiny_llama.program, before)


@pytest.mark.parametrize("value", [0.0, 3, "-255", True])
def test_non_negative_or_non_number_mask_value_refused(value):
    with pytest.raises(
        OptionError, match=r"qnn-replace-causal-mask\.mask_value: must be a negative"
    ):
        QnnReplaceCausalMaskPass(mask_value=value)


def test_model_without_mask_refused():
    module, inputs = mlp()
    with pytest.raises(ModelError, match=r"has no attention mask buffer"):
        QnnReplaceCausalMaskPass().apply(Program.eager(module, inputs))
