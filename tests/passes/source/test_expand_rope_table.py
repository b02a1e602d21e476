from __future__ import annotations

import pytest

from pteflow.driver.models import tiny_llama as build_tiny_llama
from pteflow.ir import Program
from pteflow.ir.errors import ModelError
from pteflow.passes import PassManager
from pteflow.passes.source.expand_rope_table import ExpandRopeTablePass
from tests.models import mlp

from ._helpers import assert_decode_equal, assert_unchanged, run, snapshot


def test_tables_gain_a_head_dimension(tiny_llama_mha):
    rope = tiny_llama_mha.program.modules()["forward"].rope
    assert tuple(rope.freqs_cos.shape) == (128, 8)
    result = run([ExpandRopeTablePass()], tiny_llama_mha)
    assert result.records[0].modified
    rope = result.program.modules()["forward"].rope
    assert tuple(rope.freqs_cos.shape) == tuple(rope.freqs_sin.shape) == (128, 4, 8)
    # the attention layers share the one Rope, so they see the expanded tables too
    layer_rope = result.program.modules()["forward"].layers[0].attention.rope
    assert layer_rope.freqs_cos.dim() == 3


def test_second_run_changes_nothing(tiny_llama_mha):
    first = run([ExpandRopeTablePass()], tiny_llama_mha)
    again = PassManager([ExpandRopeTablePass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_decode_outputs_equal_the_reference(tiny_llama_mha):
    result = run([ExpandRopeTablePass()], tiny_llama_mha)
    assert_decode_equal(result.program, tiny_llama_mha)


def test_grouped_query_attention_refused(tiny_llama):
    with pytest.raises(
        ModelError,
        match=r"forward:layers\.0 has 4 query heads but 2 key/value "
        r"heads.*needs n_kv_heads == n_heads",
    ):
        ExpandRopeTablePass().apply(tiny_llama.program)


def test_huggingface_rope_refused():
    model = build_tiny_llama(n_kv_heads=4, use_hf_rope=True)
    with pytest.raises(ModelError, match=r"HuggingFace-style RoPE \(use_hf_rope\)"):
        ExpandRopeTablePass().apply(model.program)


def test_model_that_is_not_a_llama_refused():
    module, inputs = mlp()
    with pytest.raises(
        ModelError,
        match=r"has no ExecuTorch Llama Transformer as method "
        r"'forward'",
    ):
        ExpandRopeTablePass().apply(Program.eager(module, inputs))


def test_input_program_left_intact(tiny_llama_mha):
    before = snapshot(tiny_llama_mha.program)
    result = run([ExpandRopeTablePass()], tiny_llama_mha)
    assert result.program.modules()["forward"] is not tiny_llama_mha.program.modules()["forward"]
    assert_unchanged(tiny_llama_mha.program, before)
