from __future__ import annotations

import pytest
import torch

from pteflow.ir import Program, facts
from pteflow.ir.errors import ModelError, OptionError
from pteflow.passes import PassManager
from pteflow.passes.source.replace_sdpa_with_custom_op import ReplaceSdpaWithCustomOpPass
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


def _classes():
    from executorch.examples.models.llama.attention import SDPA, KVCache
    from executorch.examples.models.llama.source_transformation.custom_kv_cache import (
        CustomKVCache,
    )
    from executorch.examples.models.llama.source_transformation.sdpa import SDPACustom

    return SDPA, KVCache, SDPACustom, CustomKVCache


def test_swaps_sdpa_and_kv_cache_and_claims_facts(tiny_llama):
    SDPA, KVCache, SDPACustom, CustomKVCache = _classes()
    result = run([ReplaceSdpaWithCustomOpPass()], tiny_llama)  # "each": eager checkers run
    assert result.records[0].modified
    counts = class_counts(result.program)
    assert counts[SDPA] == 0 and counts[KVCache] == 0
    assert counts[SDPACustom] == 2 and counts[CustomKVCache] == 2
    assert {facts.SDPA_CUSTOM, facts.KV_CACHE_CUSTOM} <= result.program.facts
    assert all(
        not m.use_attention_mask
        for m in result.program.modules()["forward"].modules()
        if isinstance(m, SDPACustom)
    )


def test_sets_the_use_sdpa_with_kv_cache_constant(tiny_llama):
    assert tiny_llama.program.metadata["use_sdpa_with_kv_cache"] is False
    result = run([ReplaceSdpaWithCustomOpPass()], tiny_llama)
    assert result.program.metadata["use_sdpa_with_kv_cache"] is True


def test_second_run_changes_nothing(tiny_llama):
    first = run([ReplaceSdpaWithCustomOpPass()], tiny_llama)
    again = PassManager([ReplaceSdpaWithCustomOpPass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_decode_outputs_equal_the_reference(tiny_llama):
    result = run([ReplaceSdpaWithCustomOpPass()], tiny_llama)
    assert_decode_equal(result.program, tiny_llama)


def test_attention_mask_refused_on_plain_kv_cache(tiny_llama):
    # llama::custom_sdpa rejects the boolean mask of a plain cache and returns garbage
    with pytest.raises(ModelError, match=r"use_attention_mask=true needs ring-buffer KV caches"):
        ReplaceSdpaWithCustomOpPass(use_attention_mask=True).apply(tiny_llama.program)


def test_attention_mask_kept_on_ring_buffer_caches(tiny_llama):
    from executorch.examples.models.llama.source_transformation.custom_kv_cache import (
        replace_kv_cache_with_ring_kv_cache,
    )

    _, _, SDPACustom, _ = _classes()
    replace_kv_cache_with_ring_kv_cache(tiny_llama.program.modules()["forward"], [16])
    out = ReplaceSdpaWithCustomOpPass(use_attention_mask=True).apply(tiny_llama.program)
    sdpas = [m for m in out.program.modules()["forward"].modules() if isinstance(m, SDPACustom)]
    assert len(sdpas) == 2 and all(s.use_attention_mask for s in sdpas)


def test_bad_option_refused_at_construction():
    with pytest.raises(
        OptionError,
        match=r"replace-sdpa-with-custom-op\.use_attention_mask: "
        r"must be true or false",
    ):
        ReplaceSdpaWithCustomOpPass(use_attention_mask="yes")  # type: ignore[arg-type]


def test_model_without_llama_attention_refused():
    module, inputs = mlp()
    program = Program.eager(module, inputs, facts=[facts.KV_CACHE])
    with pytest.raises(ModelError, match=r"has no ExecuTorch Llama SDPA or KVCache module"):
        ReplaceSdpaWithCustomOpPass().apply(program)


@pytest.mark.slow
def test_exported_graph_calls_the_custom_ops(tiny_llama):
    result = run([ReplaceSdpaWithCustomOpPass()], tiny_llama)
    aten = export_aten(result.program)
    ops = aten_ops(aten)
    assert ops[torch.ops.llama.custom_sdpa.default] == 2
    assert ops[torch.ops.llama.update_cache.default] == 4  # k and v, per layer
    assert ops[torch.ops.aten.scaled_dot_product_attention.default] == 0
    assert facts.SDPA_CUSTOM.check(aten) is None


@pytest.mark.slow
def test_kv_cache_custom_checker_accepts_the_exported_graph(tiny_llama):
    result = run([ReplaceSdpaWithCustomOpPass()], tiny_llama)
    assert facts.KV_CACHE_CUSTOM.check(export_aten(result.program)) is None


def test_input_program_left_intact(tiny_llama):
    before = snapshot(tiny_llama.program)
    result = run([ReplaceSdpaWithCustomOpPass()], tiny_llama)
    assert result.program.modules()["forward"] is not tiny_llama.program.modules()["forward"]
    assert_unchanged(tiny_llama.program, before)


def test_no_change_once_attention_is_quantized(tiny_llama):
    from pteflow.passes.source.quantize_kv_cache import QuantizeKvCachePass
    from pteflow.passes.source.replace_sdpa_with_quantized_sdpa import (
        ReplaceSdpaWithQuantizedSdpaPass,
    )

    done = run(
        [ReplaceSdpaWithCustomOpPass(), QuantizeKvCachePass(), ReplaceSdpaWithQuantizedSdpaPass()],
        tiny_llama,
    )
    again = PassManager([ReplaceSdpaWithCustomOpPass()], verify="each").run(done.program)
    assert not again.records[0].modified
