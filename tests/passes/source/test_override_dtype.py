from __future__ import annotations

import pytest
import torch

from pteflow.ir import facts
from pteflow.ir.errors import OptionError
from pteflow.passes import plan
from pteflow.passes.source.expand_rope_table import ExpandRopeTablePass
from pteflow.passes.source.override_dtype import OverrideDtypePass
from pteflow.passes.source.quantize_kv_cache import QuantizeKvCachePass
from pteflow.passes.source.replace_rms_norm_with_native import ReplaceRmsNormWithNativePass
from pteflow.passes.source.replace_sdpa_with_custom_op import ReplaceSdpaWithCustomOpPass
from pteflow.passes.source.replace_sdpa_with_quantized_sdpa import (
    ReplaceSdpaWithQuantizedSdpaPass,
)

from ._helpers import assert_unchanged, decode, max_diff, run, snapshot

TORCH = {"fp16": torch.float16, "bf16": torch.bfloat16}
# half precision against the fp32 reference, logits up to ~3.8: fp16 measured ~3e-3, bf16 ~3e-2
TOLERANCE = {"fp16": 0.02, "bf16": 0.15}


def _floating(module: torch.nn.Module) -> list[torch.Tensor]:
    return [t for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()]


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_casts_every_float_tensor(tiny_llama, dtype):
    result = run([OverrideDtypePass(dtype=dtype)], tiny_llama)
    assert result.records[0].modified
    module = result.program.modules()["forward"]
    assert {t.dtype for t in _floating(module)} == {TORCH[dtype]}
    assert facts.DTYPE_OVERRIDDEN in result.program.facts
    assert result.program.metadata["_dtype"] == dtype


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_decode_outputs_within_half_precision_error(tiny_llama, dtype):
    result = run([OverrideDtypePass(dtype=dtype)], tiny_llama)
    got = decode(result.program.modules()["forward"], tiny_llama)
    assert all(g.dtype == TORCH[dtype] for g in got)
    assert max_diff(got, decode(tiny_llama.reference["forward"], tiny_llama)) <= TOLERANCE[dtype]


def test_fp32_model_to_fp32_changes_nothing(tiny_llama):
    result = run([OverrideDtypePass()], tiny_llama)
    assert not result.records[0].modified
    assert facts.DTYPE_OVERRIDDEN in result.program.facts


def test_int8_kv_cache_stays_int8(tiny_llama):
    from executorch.examples.models.llama.source_transformation.custom_kv_cache import (
        QuantizedKVCache,
    )

    result = run([OverrideDtypePass(dtype="fp16"), QuantizeKvCachePass()], tiny_llama)
    assert [r.name for r in result.records] == ["quantize-kv-cache", "override-dtype"]
    caches = [
        m for m in result.program.modules()["forward"].modules() if isinstance(m, QuantizedKVCache)
    ]
    assert caches and all(c.k_cache.dtype == torch.int8 for c in caches)
    assert all(c.k_cache_scales.dtype == torch.float16 for c in caches)  # as export_llama does


def test_runs_after_the_other_source_transforms():
    passes = [
        OverrideDtypePass(dtype="bf16"),
        ExpandRopeTablePass(),
        ReplaceRmsNormWithNativePass(),
        ReplaceSdpaWithQuantizedSdpaPass(),
        QuantizeKvCachePass(),
        ReplaceSdpaWithCustomOpPass(),
    ]
    ordered = [p.name for p in plan(passes, initial_facts={facts.KV_CACHE}).ordered_passes()]
    assert ordered[-1] == "override-dtype"
    assert (
        ordered.index("replace-sdpa-with-custom-op")
        < ordered.index("quantize-kv-cache")
        < ordered.index("replace-sdpa-with-quantized-sdpa")
    )


def test_runs_after_the_quantization_passes():
    from pteflow.passes.quantize.quantize_8da4w import Quantize8da4wPass
    from pteflow.passes.quantize.quantize_embedding import QuantizeEmbeddingPass
    from pteflow.passes.quantize.quantize_int8_weight import QuantizeInt8WeightPass

    for quantize in (Quantize8da4wPass(), QuantizeInt8WeightPass()):
        passes = [OverrideDtypePass(dtype="fp16"), quantize, QuantizeEmbeddingPass()]
        the_plan = plan(passes, initial_facts={facts.KV_CACHE})
        assert [p.name for p in the_plan.ordered_passes()][-1] == "override-dtype"
        assert any("declares after " + quantize.name in r for r in the_plan.why(0))


def test_casts_around_8da4w_weights(tiny_llama):
    from torchao.utils import TorchAOBaseTensor

    from pteflow.passes.quantize.quantize_8da4w import Quantize8da4wPass

    result = run([OverrideDtypePass(dtype="fp16"), Quantize8da4wPass()], tiny_llama)
    assert [r.name for r in result.records] == ["quantize-8da4w", "override-dtype"]
    module = result.program.modules()["forward"]
    assert isinstance(module.layers[0].attention.wq.weight, TorchAOBaseTensor)
    assert {t.dtype for t in _floating(module)} == {torch.float16}
    got = decode(module, tiny_llama)
    assert all(g.dtype == torch.float16 and torch.isfinite(g).all() for g in got)


def test_tied_weights_stay_tied(tiny_llama):
    module = tiny_llama.program.modules()["forward"]
    module.output.weight = module.tok_embeddings.weight
    result = run([OverrideDtypePass(dtype="bf16")], tiny_llama)
    cast = result.program.modules()["forward"]
    assert cast.output.weight is cast.tok_embeddings.weight
    assert cast.output.weight.dtype == torch.bfloat16


def test_bad_dtype_refused_at_construction():
    with pytest.raises(
        OptionError,
        match=r"override-dtype\.dtype: 'fp64' is not one of "
        r"'fp32', 'fp16', 'bf16'",
    ):
        OverrideDtypePass(dtype="fp64")


def test_input_program_left_intact(tiny_llama):
    before = snapshot(tiny_llama.program)
    result = run([OverrideDtypePass(dtype="fp16")], tiny_llama)
    assert result.program.modules()["forward"] is not tiny_llama.program.modules()["forward"]
    assert_unchanged(tiny_llama.program, before)
