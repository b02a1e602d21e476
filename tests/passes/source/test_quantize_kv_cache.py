from __future__ import annotations

import pytest
import torch

from pteflow.ir import Program, facts
from pteflow.ir.errors import ModelError
from pteflow.passes import PassManager, plan
from pteflow.passes.source.quantize_kv_cache import QuantizeKvCachePass
from pteflow.passes.source.replace_sdpa_with_custom_op import ReplaceSdpaWithCustomOpPass
from tests.models import mlp

from ._helpers import (
    assert_unchanged,
    aten_ops,
    class_counts,
    decode,
    export_aten,
    max_diff,
    run,
    snapshot,
)

# int8 per-token KV cache: measured 0.012 max abs logit error on the tiny Llama
# (logits up to ~3.8); the bound leaves room for other seeds and kernels.
TOLERANCE = 0.05


def _classes():
    from executorch.examples.models.llama.attention import KVCache
    from executorch.examples.models.llama.source_transformation.custom_kv_cache import (
        CustomKVCache,
        QuantizedKVCache,
    )

    return KVCache, CustomKVCache, QuantizedKVCache


def test_replaces_every_kv_cache(tiny_llama):
    KVCache, _, QuantizedKVCache = _classes()
    result = run([QuantizeKvCachePass()], tiny_llama)
    assert result.records[0].modified
    counts = class_counts(result.program)
    assert counts[KVCache] == 0 and counts[QuantizedKVCache] == 2
    assert facts.KV_CACHE_QUANTIZED in result.program.facts
    caches = [
        m for m in result.program.modules()["forward"].modules() if isinstance(m, QuantizedKVCache)
    ]
    assert all(c.k_cache.dtype == torch.int8 and c.v_cache.dtype == torch.int8 for c in caches)


def test_second_run_changes_nothing(tiny_llama):
    first = run([QuantizeKvCachePass()], tiny_llama)
    again = PassManager([QuantizeKvCachePass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_decode_outputs_within_quantization_error(tiny_llama):
    result = run([QuantizeKvCachePass()], tiny_llama)
    got = decode(result.program.modules()["forward"], tiny_llama)
    want = decode(tiny_llama.reference["forward"], tiny_llama)
    assert 0 < max_diff(got, want) <= TOLERANCE


def test_quantizes_the_custom_kv_cache_after_the_custom_op_pass(tiny_llama):
    _, CustomKVCache, QuantizedKVCache = _classes()
    result = run([QuantizeKvCachePass(), ReplaceSdpaWithCustomOpPass()], tiny_llama)
    assert [r.name for r in result.records] == ["replace-sdpa-with-custom-op", "quantize-kv-cache"]
    counts = class_counts(result.program)
    assert counts[CustomKVCache] == 0 and counts[QuantizedKVCache] == 2
    got = decode(result.program.modules()["forward"], tiny_llama)
    assert max_diff(got, decode(tiny_llama.reference["forward"], tiny_llama)) <= TOLERANCE


def test_runs_after_the_custom_op_pass_by_declaration():
    the_plan = plan(
        [QuantizeKvCachePass(), ReplaceSdpaWithCustomOpPass()], initial_facts={facts.KV_CACHE}
    )
    assert [p.name for p in the_plan.ordered_passes()] == [
        "replace-sdpa-with-custom-op",
        "quantize-kv-cache",
    ]
    assert any("declares after" in r for r in the_plan.why(0))


def test_ring_buffer_cache_refused(tiny_llama):
    from executorch.examples.models.llama.source_transformation.custom_kv_cache import (
        replace_kv_cache_with_ring_kv_cache,
    )

    replace_kv_cache_with_ring_kv_cache(tiny_llama.program.modules()["forward"], [16])
    with pytest.raises(
        ModelError,
        match=r"layers\.0\.attention\.kv_cache is a ring-buffer KV "
        r"cache \(RingKVCache\)",
    ):
        QuantizeKvCachePass().apply(tiny_llama.program)


def test_model_without_kv_cache_refused():
    module, inputs = mlp()
    program = Program.eager(module, inputs, facts=[facts.KV_CACHE])
    with pytest.raises(ModelError, match=r"has no ExecuTorch Llama KVCache module"):
        QuantizeKvCachePass().apply(program)


def test_requires_the_kv_cache_fact(tiny_llama):
    from pteflow.ir.errors import PipelineError

    program = tiny_llama.program.evolve(facts=frozenset())
    with pytest.raises(PipelineError, match=r"requires kv_cache"):
        QuantizeKvCachePass().apply(program)


@pytest.mark.slow
def test_exported_graph_quantizes_per_token(tiny_llama):
    result = run([QuantizeKvCachePass()], tiny_llama)
    aten = export_aten(result.program)
    ops = aten_ops(aten)
    assert ops[torch.ops.quantized_decomposed.quantize_per_token.default] == 4
    # per layer: int8 k/v, their scales and zero points (6), and the exact new k/v written
    # into the dequantized copy attention reads (2)
    assert ops[torch.ops.llama.update_cache.default] == 16
    assert facts.KV_CACHE_QUANTIZED.check(aten) is None


def test_input_program_left_intact(tiny_llama):
    before = snapshot(tiny_llama.program)
    result = run([QuantizeKvCachePass()], tiny_llama)
    assert result.program.modules()["forward"] is not tiny_llama.program.modules()["forward"]
    assert_unchanged(tiny_llama.program, before)
