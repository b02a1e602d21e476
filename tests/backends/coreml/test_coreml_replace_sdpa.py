from __future__ import annotations

import pytest
import torch

from pteflow.backends.coreml.coreml_replace_sdpa import CoremlReplaceSdpaPass
from pteflow.backends.coreml.facts import SDPA_COREML
from pteflow.backends.qnn.qnn_replace_causal_mask import QnnReplaceCausalMaskPass
from pteflow.ir import facts
from pteflow.ir.errors import ModelError, UnsatisfiedError
from pteflow.passes import PassManager
from pteflow.passes.source.replace_sdpa_with_custom_op import ReplaceSdpaWithCustomOpPass
from tests.passes.source._helpers import assert_decode_equal, aten_ops, export_aten, run


@pytest.mark.parametrize(("ios", "cls_name"), [(18, "SDPACoreML"), (17, "SDPASimple")])
def test_ios_picks_the_attention_upstream_picks(tiny_llama, ios, cls_name):
    from executorch.examples.models.llama.attention import SDPA

    result = run([CoremlReplaceSdpaPass(ios=ios), QnnReplaceCausalMaskPass()], tiny_llama)
    assert result.records[0].modified
    subs = list(result.program.modules()["forward"].modules())
    assert sum(isinstance(m, SDPA) for m in subs) == 0
    assert sum(type(m).__name__ == cls_name for m in subs) == 2
    assert SDPA_COREML in result.program.facts


def test_decode_outputs_equal_the_reference(tiny_llama):
    result = run([CoremlReplaceSdpaPass(ios=18)], tiny_llama)
    assert_decode_equal(result.program, tiny_llama)


def test_before_ios18_the_additive_mask_is_required(tiny_llama):
    # SDPASimple adds the mask: with the model's boolean mask the logits are wrong
    with pytest.raises(UnsatisfiedError, match=r"requires fact 'mask\.additive'"):
        PassManager([CoremlReplaceSdpaPass(ios=17)]).plan(initial_facts=[facts.KV_CACHE])
    result = run([CoremlReplaceSdpaPass(ios=17), QnnReplaceCausalMaskPass()], tiny_llama)
    assert_decode_equal(result.program, tiny_llama)


def test_second_run_changes_nothing(tiny_llama):
    first = run([CoremlReplaceSdpaPass()], tiny_llama)
    again = PassManager([CoremlReplaceSdpaPass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_custom_sdpa_model_refused(tiny_llama):
    custom = run([ReplaceSdpaWithCustomOpPass()], tiny_llama)
    with pytest.raises(ModelError, match=r"has no ExecuTorch SDPA module"):
        CoremlReplaceSdpaPass().apply(custom.program)


@pytest.mark.slow
def test_ios18_exports_coreml_sdpa_op(tiny_llama):
    result = run([CoremlReplaceSdpaPass(ios=18)], tiny_llama)
    ops = aten_ops(export_aten(result.program))
    assert ops[torch.ops.coreml.sdpa.default] == 2
    assert ops[torch.ops.aten.scaled_dot_product_attention.default] == 0
