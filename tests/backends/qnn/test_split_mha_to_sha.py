from __future__ import annotations

import copy

import pytest
import torch

from pteflow.backends.qnn.facts import ATTENTION_SHA
from pteflow.backends.qnn.split_mha_to_sha import SplitMhaToShaPass
from pteflow.driver.models import decode_steps
from pteflow.driver.models import tiny_llama as build_tiny_llama
from pteflow.ir import Program, facts
from pteflow.ir.errors import ModelError
from pteflow.passes import PassManager
from tests.models import mlp
from tests.passes.source._helpers import (
    assert_decode_equal,
    assert_unchanged,
    aten_ops,
    export_aten,
    run,
    snapshot,
)


def _classes(program: Program) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in program.modules()["forward"].modules():
        out[type(m).__name__] = out.get(type(m).__name__, 0) + 1
    return out


def _outputs(module: torch.nn.Module, steps: list) -> list[torch.Tensor]:
    with torch.no_grad():
        return [module(*inputs) for _method, inputs in steps]


def _assert_steps_equal(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for step, (g, w) in enumerate(zip(got, want, strict=True)):
        torch.testing.assert_close(g, w, msg=lambda m, step=step: f"step {step}: {m}")


def test_every_attention_is_split_per_head(tiny_llama):
    result = run([SplitMhaToShaPass()], tiny_llama)
    assert result.records[0].modified
    counts = _classes(result.program)
    assert counts.get("AttentionMHA", 0) == 0 and counts["AttentionSHA"] == 2
    assert counts.get("KVCache", 0) == 0 and counts["KVCacheSHA"] == 2
    attn = result.program.modules()["forward"].layers[0].attention
    assert (len(attn.wq), len(attn.wk), len(attn.wv)) == (4, 2, 2)
    assert all(lin.weight.shape == (16, 64) for lin in [*attn.wq, *attn.wk, *attn.wv])
    assert attn.kv_cache.past_k_caches_1.shape == (1, 128, 16)
    assert ATTENTION_SHA in result.program.facts


def test_head_weights_are_row_slices_of_the_fused_weights(tiny_llama):
    mha = tiny_llama.reference["forward"].layers[1].attention
    result = run([SplitMhaToShaPass()], tiny_llama)
    sha = result.program.modules()["forward"].layers[1].attention
    for i, head in enumerate(sha.wq):
        torch.testing.assert_close(
            head.weight, mha.wq.weight[16 * i : 16 * (i + 1)], rtol=0, atol=0
        )
    for j, head in enumerate(sha.wv):
        torch.testing.assert_close(
            head.weight, mha.wv.weight[16 * j : 16 * (j + 1)], rtol=0, atol=0
        )


def test_decode_equals_the_unsplit_model_grouped_query(tiny_llama):
    """4 query heads share 2 KV heads; 10 single-token steps through the KV cache."""
    result = run([SplitMhaToShaPass()], tiny_llama)
    assert_decode_equal(result.program, tiny_llama)


def test_decode_equals_the_unsplit_model_static_shapes():
    """The static-shape form QNN exports (mask and cache indexed by input_pos)."""
    model = build_tiny_llama(seed=3, enable_dynamic_shape=False)
    result = run([SplitMhaToShaPass()], model)
    assert_decode_equal(result.program, model)


def test_prefill_then_decode_equals_the_unsplit_model():
    """A 4-token prefill in one call (dynamic shapes), then single-token decode steps."""
    model = build_tiny_llama(seed=1, n_kv_heads=1)  # multi-query: 4 heads on one KV head
    result = run([SplitMhaToShaPass()], model)
    steps = decode_steps([7, 100, 3, 42, 9, 500, 1, 77], prefill=4)
    _assert_steps_equal(
        _outputs(result.program.modules()["forward"], steps),
        _outputs(model.reference["forward"], steps),
    )


def test_split_mid_sequence_carries_the_cache_over(tiny_llama):
    steps = decode_steps([5, 6, 7, 8, 9, 10])
    live = tiny_llama.program.modules()["forward"]
    reference = copy.deepcopy(tiny_llama.reference["forward"])
    _outputs(live, steps[:3])  # fill the unsplit model's cache
    _outputs(reference, steps[:3])
    result = SplitMhaToShaPass().apply(tiny_llama.program)
    _assert_steps_equal(
        _outputs(result.program.modules()["forward"], steps[3:]), _outputs(reference, steps[3:])
    )


def test_equal_after_qnn_mask_and_simple_cache_transforms():
    """Split after QNN's source transforms (additive mask, simple KV cache, flex SDPA)."""
    from pteflow.backends.qnn.qnn_replace_causal_mask import QnnReplaceCausalMaskPass
    from pteflow.backends.qnn.qnn_replace_kv_cache_with_simple import (
        QnnReplaceKvCacheWithSimplePass,
    )
    from pteflow.backends.qnn.qnn_replace_sdpa_with_flex import QnnReplaceSdpaWithFlexPass

    model = build_tiny_llama(seed=2, enable_dynamic_shape=False)
    passes = [
        SplitMhaToShaPass(),  # listed first: declared after the simple cache and flex SDPA
        QnnReplaceKvCacheWithSimplePass(),
        QnnReplaceCausalMaskPass(),
        QnnReplaceSdpaWithFlexPass(),
    ]
    result = run(passes, model)
    assert [r.name for r in result.records][-1] == "split-mha-to-sha"
    counts = _classes(result.program)
    assert counts["AttentionSHA"] == 2 and "SDPAFlex" not in counts
    assert_decode_equal(result.program, model)


def test_second_run_changes_nothing(tiny_llama):
    first = run([SplitMhaToShaPass()], tiny_llama)
    again = PassManager([SplitMhaToShaPass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_input_program_left_intact(tiny_llama):
    before = snapshot(tiny_llama.program)
    run([SplitMhaToShaPass()], tiny_llama)
    assert_unchanged(tiny_llama.program, before)


def test_qk_norm_attention_refused():
    model = build_tiny_llama(use_qk_norm=True)
    with pytest.raises(
        ModelError, match=r"cannot split forward:layers\.0\.attention exactly: it uses QK norm"
    ):
        SplitMhaToShaPass().apply(model.program)


def test_custom_kv_cache_refused(tiny_llama):
    from pteflow.passes.source.replace_sdpa_with_custom_op import ReplaceSdpaWithCustomOpPass

    custom = run([ReplaceSdpaWithCustomOpPass()], tiny_llama).program
    with pytest.raises(ModelError, match=r"its KV cache is a CustomKVCache"):
        SplitMhaToShaPass().apply(custom)


def test_model_without_attention_refused():
    module, inputs = mlp()
    program = Program.eager(module, inputs, facts=[facts.KV_CACHE])
    with pytest.raises(ModelError, match=r"has no ExecuTorch AttentionMHA module"):
        SplitMhaToShaPass().apply(program)


def test_fact_checker_rejects_the_unsplit_model(tiny_llama):
    assert ATTENTION_SHA.check(tiny_llama.program) == (
        "submodules of class AttentionMHA are still there"
    )


@pytest.mark.slow
def test_exported_graph_has_per_head_caches_and_no_fused_sdpa():
    model = build_tiny_llama(seed=0, enable_dynamic_shape=False)
    result = run([SplitMhaToShaPass()], model)
    ops = aten_ops(export_aten(result.program))
    # 2 layers x 2 KV heads x (K, V): one cache write each
    assert ops[torch.ops.aten.index_put.default] == 8
    assert ops[torch.ops.aten.scaled_dot_product_attention.default] == 0
    # 2 layers x 4 query heads: one softmax each
    assert ops[torch.ops.aten.softmax.int] + ops[torch.ops.aten._softmax.default] == 8
