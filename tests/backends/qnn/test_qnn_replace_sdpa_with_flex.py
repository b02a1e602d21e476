from __future__ import annotations

import pytest
import torch

from pteflow.backends.qnn.facts import SDPA_FLEX
from pteflow.backends.qnn.qnn_replace_causal_mask import QnnReplaceCausalMaskPass
from pteflow.backends.qnn.qnn_replace_sdpa_with_flex import QnnReplaceSdpaWithFlexPass
from pteflow.ir import facts
from pteflow.ir.errors import ModelError, UnsatisfiedError
from pteflow.ir.facts import MASK_ADDITIVE
from pteflow.passes import PassManager
from pteflow.passes.source.replace_sdpa_with_custom_op import ReplaceSdpaWithCustomOpPass
from tests.passes.source._helpers import assert_decode_equal, aten_ops, export_aten, run


def test_every_sdpa_becomes_flex_after_the_mask(tiny_llama):
    from executorch.examples.models.llama.attention import SDPA
    from executorch.examples.models.llama.source_transformation.sdpa import SDPAFlex

    # listed first: the mask fact puts it after qnn-replace-causal-mask
    result = run([QnnReplaceSdpaWithFlexPass(), QnnReplaceCausalMaskPass()], tiny_llama)
    assert [r.name for r in result.records] == [
        "qnn-replace-causal-mask",
        "qnn-replace-sdpa-with-flex",
    ]
    subs = list(result.program.modules()["forward"].modules())
    assert sum(isinstance(m, SDPA) for m in subs) == 0
    assert sum(isinstance(m, SDPAFlex) for m in subs) == 2
    assert {SDPA_FLEX, MASK_ADDITIVE} <= result.program.facts


def test_decode_outputs_equal_the_reference(tiny_llama):
    result = run([QnnReplaceCausalMaskPass(), QnnReplaceSdpaWithFlexPass()], tiny_llama)
    assert_decode_equal(result.program, tiny_llama)


def test_without_the_additive_mask_the_plan_is_refused(tiny_llama):
    with pytest.raises(UnsatisfiedError, match=r"requires fact 'mask\.additive'"):
        PassManager([QnnReplaceSdpaWithFlexPass()]).plan(initial_facts=[facts.KV_CACHE])


def test_second_run_changes_nothing(tiny_llama):
    first = run([QnnReplaceCausalMaskPass(), QnnReplaceSdpaWithFlexPass()], tiny_llama)
    again = PassManager([QnnReplaceSdpaWithFlexPass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_custom_sdpa_model_refused(tiny_llama):
    custom = run([ReplaceSdpaWithCustomOpPass(), QnnReplaceCausalMaskPass()], tiny_llama)
    with pytest.raises(ModelError, match=r"has no ExecuTorch SDPA module"):
        QnnReplaceSdpaWithFlexPass().apply(custom.program)


@pytest.mark.slow
def test_exported_graph_has_no_fused_attention(tiny_llama):
    result = run([QnnReplaceCausalMaskPass(), QnnReplaceSdpaWithFlexPass()], tiny_llama)
    ops = aten_ops(export_aten(result.program))
    assert ops[torch.ops.aten.scaled_dot_product_attention.default] == 0
    assert ops[torch.ops.aten.softmax.int] + ops[torch.ops.aten._softmax.default] == 2
