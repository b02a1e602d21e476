from __future__ import annotations

import pytest
import torch

from pteflow.ir import facts
from pteflow.ir.errors import ModelError, UnsatisfiedError
from pteflow.passes import PassManager, plan
from pteflow.passes.source.quantize_kv_cache import QuantizeKvCachePass
from pteflow.passes.source.replace_sdpa_with_custom_op import ReplaceSdpaWithCustomOpPass
from pteflow.passes.source.replace_sdpa_with_quantized_sdpa import (
    ReplaceSdpaWithQuantizedSdpaPass,
)

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

# int8 attention over an int8 cache: measured 0.020 max abs logit error on the tiny Llama.
TOLERANCE = 0.05


def _full() -> list:
    # listed out of order on purpose: the manager orders them from their contracts
    return [
        ReplaceSdpaWithQuantizedSdpaPass(),
        QuantizeKvCachePass(),
        ReplaceSdpaWithCustomOpPass(),
    ]


def test_ordered_after_the_cache_and_custom_sdpa(tiny_llama):
    result = run(_full(), tiny_llama)
    assert [r.name for r in result.records] == [
        "replace-sdpa-with-custom-op",
        "quantize-kv-cache",
        "replace-sdpa-with-quantized-sdpa",
    ]


def test_swaps_custom_sdpa_for_quantized_sdpa(tiny_llama):
    from executorch.examples.models.llama.source_transformation.custom_kv_cache import (
        QuantizedKVCache,
    )
    from executorch.examples.models.llama.source_transformation.sdpa import (
        QuantizedSDPA,
        SDPACustom,
    )

    result = run(_full(), tiny_llama)
    assert result.records[-1].modified
    counts = class_counts(result.program)
    assert counts[SDPACustom] == 0 and counts[QuantizedSDPA] == 2
    caches = [
        m for m in result.program.modules()["forward"].modules() if isinstance(m, QuantizedKVCache)
    ]
    assert caches and not any(c.return_float_values for c in caches)
    assert facts.SDPA_QUANTIZED in result.program.facts
    assert facts.SDPA_CUSTOM not in result.program.facts  # invalidated: no custom_sdpa any more


def test_second_run_changes_nothing(tiny_llama):
    first = run(_full(), tiny_llama)
    # sdpa.custom was invalidated, so put it back to satisfy the contract for a re-run
    program = first.program.with_facts(gained=[facts.SDPA_CUSTOM])
    again = PassManager([ReplaceSdpaWithQuantizedSdpaPass()], verify="off").run(program)
    assert not again.records[0].modified


def test_decode_outputs_within_quantization_error(tiny_llama):
    result = run(_full(), tiny_llama)
    got = decode(result.program.modules()["forward"], tiny_llama)
    want = decode(tiny_llama.reference["forward"], tiny_llama)
    assert 0 < max_diff(got, want) <= TOLERANCE


def test_without_custom_sdpa_the_pipeline_is_refused():
    # upstream only swaps SDPACustom: without the custom-op pass it would do nothing
    with pytest.raises(
        UnsatisfiedError,
        match=r"requires fact 'sdpa.custom'.*add one of: "
        r"replace-sdpa-with-custom-op",
    ):
        from pteflow.passes.registry import load_registry

        plan(
            [ReplaceSdpaWithQuantizedSdpaPass(), QuantizeKvCachePass()],
            initial_facts={facts.KV_CACHE},
            registry=load_registry(entry_points=False),
        )


def test_without_quantized_cache_the_pipeline_is_refused():
    with pytest.raises(UnsatisfiedError, match=r"requires fact 'kv_cache.quantized'"):
        plan(
            [ReplaceSdpaWithQuantizedSdpaPass(), ReplaceSdpaWithCustomOpPass()],
            initial_facts={facts.KV_CACHE},
        )


def test_custom_sdpa_with_mask_refused(tiny_llama):
    from executorch.examples.models.llama.source_transformation.sdpa import SDPACustom

    result = run([ReplaceSdpaWithCustomOpPass(), QuantizeKvCachePass()], tiny_llama)
    for m in result.program.modules()["forward"].modules():
        if isinstance(m, SDPACustom):
            m.use_attention_mask = True
    with pytest.raises(ModelError, match=r"uses custom SDPA with an attention mask"):
        ReplaceSdpaWithQuantizedSdpaPass().apply(result.program)


@pytest.mark.slow
def test_exported_graph_calls_custom_quantized_sdpa(tiny_llama):
    result = run(_full(), tiny_llama)
    aten = export_aten(result.program, strict=True)  # export_llama's tracer
    ops = aten_ops(aten)
    assert ops[torch.ops.llama.custom_quantized_sdpa.default] == 2
    assert ops[torch.ops.llama.custom_sdpa.default] == 0
    assert facts.SDPA_QUANTIZED.check(aten) is None
    assert facts.KV_CACHE_QUANTIZED.check(aten) is None


def test_input_program_left_intact(tiny_llama):
    from executorch.examples.models.llama.source_transformation.custom_kv_cache import (
        QuantizedKVCache,
    )

    before_run = run([ReplaceSdpaWithCustomOpPass(), QuantizeKvCachePass()], tiny_llama)
    program = before_run.program
    before = snapshot(program)
    PassManager([ReplaceSdpaWithQuantizedSdpaPass()], verify="each").run(program)
    assert_unchanged(program, before)
    caches = [m for m in program.modules()["forward"].modules() if isinstance(m, QuantizedKVCache)]
    assert all(c.return_float_values for c in caches)  # upstream flips it on the copy only


@pytest.mark.slow
def test_non_strict_export_works(tiny_llama):
    # upstream registers each cache twice (attention and QuantizedSDPA), and then
    # run_decompositions after a non-strict export fails in aot_stage2_export
    aten = export_aten(run(_full(), tiny_llama).program, strict=False)
    assert aten_ops(aten)[torch.ops.llama.custom_quantized_sdpa.default] == 2


def test_each_cache_registered_once(tiny_llama):
    from executorch.examples.models.llama.source_transformation.sdpa import QuantizedSDPA

    module = run(_full(), tiny_llama).program.modules()["forward"]
    names = [n for n, _ in module.named_buffers(remove_duplicate=False) if "k_cache_scales" in n]
    assert names == [f"layers.{i}.attention.kv_cache.k_cache_scales" for i in range(2)]
    for layer in module.layers:  # QuantizedSDPA still reads the attention's cache
        assert isinstance(layer.attention.SDPA, QuantizedSDPA)
        assert layer.attention.SDPA.kv_cache is layer.attention.kv_cache


@pytest.mark.slow
def test_claims_hold_after_the_export_pass(tiny_llama):
    # "boundaries": the facts the source passes claim are checked on the ATen graph
    from pteflow.passes.convert.export import TorchExportPass

    result = PassManager([*_full(), TorchExportPass()], verify="boundaries").run(tiny_llama.program)
    assert {facts.KV_CACHE_CUSTOM, facts.KV_CACHE_QUANTIZED, facts.SDPA_QUANTIZED} <= (
        result.program.facts
    )
