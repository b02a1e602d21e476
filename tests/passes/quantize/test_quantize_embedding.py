from __future__ import annotations

import pytest
import torch

from pteflow.ir import Program, facts
from pteflow.ir.errors import ModelError, OptionError
from pteflow.ir.views import op_histogram
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.quantize.quantize_embedding import QuantizeEmbeddingPass

from .conftest import rel_err, token_mlp


def _quantized_embedding_class():
    from executorch.examples.models.llama.source_transformation.quantize import (
        QuantizedGroupEmbedding,
    )

    return QuantizedGroupEmbedding


@pytest.mark.parametrize(
    ("bits", "group", "weight_shape", "scales_shape"),
    [
        (4, 32, (100, 32), (100, 2)),  # two 4-bit values per byte, two groups per row
        (8, 0, (100, 64), (100,)),  # one group per row
        (8, 16, (100, 64), (100, 4)),
    ],
)
def test_replaces_the_table_with_the_packed_quantized_one(
    eager_token_mlp, bits, group, weight_shape, scales_shape
):
    result = QuantizeEmbeddingPass(bitwidth=bits, group_size=group).apply(eager_token_mlp)
    assert result.modified
    emb = result.program.modules()["forward"].emb
    assert isinstance(emb, _quantized_embedding_class())
    assert tuple(emb.weight.shape) == weight_shape and tuple(emb.scales.shape) == scales_shape
    assert emb.weight.dtype == (torch.uint8 if bits == 4 else torch.int8)
    assert type(eager_token_mlp.modules()["forward"].emb) is torch.nn.Embedding  # untouched
    assert facts.EMBEDDING_QUANTIZED in result.program.facts
    assert not QuantizeEmbeddingPass().apply(result.program).modified  # nothing left


@pytest.mark.parametrize(
    ("spec", "bits", "group", "tolerance"),
    [
        ("4,32", 4, 32, 0.15),  # 16 levels per group of 32
        ("8,0", 8, 0, 0.01),  # 256 levels per row
    ],
)
def test_same_as_export_llamas_embedding_quantize(spec, bits, group, tolerance):
    from executorch.examples.models.llama.source_transformation.quantize import (
        get_quant_embedding_transform,
    )

    module, (tokens,) = token_mlp()
    with torch.no_grad():
        want = module(tokens)
    ours = (
        QuantizeEmbeddingPass(bitwidth=bits, group_size=group)
        .apply(Program.eager(module, (tokens,)))
        .program.modules()["forward"]
    )
    theirs, _ = token_mlp()
    theirs = get_quant_embedding_transform(spec)(theirs)
    with torch.no_grad():
        got = ours(tokens)
        torch.testing.assert_close(got, theirs(tokens), atol=0, rtol=0)
    assert rel_err(got, want) < tolerance


@pytest.mark.parametrize(("bits", "op"), [(4, "embedding_4bit"), (8, "embedding_byte")])
def test_exported_graph_looks_up_the_quantized_table(eager_token_mlp, bits, op):
    out = QuantizeEmbeddingPass(bitwidth=bits).apply(eager_token_mlp).program
    aten = TorchExportPass().apply(out).program
    ops = op_histogram(aten)
    assert ops[getattr(torch.ops.quantized_decomposed, op).dtype] == 1
    assert ops[torch.ops.aten.embedding.default] == 0
    assert facts.EMBEDDING_QUANTIZED.check(aten) is None


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("bitwidth", 2, r"quantize-embedding\.bitwidth: 2 is not one of 8, 4"),
        ("bitwidth", "4", r"quantize-embedding\.bitwidth: '4' is not one of"),
        ("group_size", -1, r"quantize-embedding\.group_size: must be 0 .one group per row. or"),
        ("group_size", 1.5, r"quantize-embedding\.group_size: must be 0"),
    ],
)
def test_bad_options_are_refused(field, bad, message):
    with pytest.raises(OptionError, match=message):
        QuantizeEmbeddingPass(**{field: bad})


def test_group_size_that_does_not_divide_the_table_names_it(eager_token_mlp):
    with pytest.raises(
        ModelError,
        match=r"group_size 48 does not divide embedding_dim 64 of "
        r"embedding 'emb'",
    ):
        QuantizeEmbeddingPass(group_size=48).apply(eager_token_mlp)


def test_four_bits_need_an_even_row():
    module, inputs = token_mlp(dim=63, hidden=63)
    with pytest.raises(
        ModelError,
        match=r"embedding 'emb' has odd embedding_dim 63; use "
        r"bitwidth 8",
    ):
        QuantizeEmbeddingPass(bitwidth=4, group_size=0).apply(Program.eager(module, inputs))
    assert (
        QuantizeEmbeddingPass(bitwidth=8, group_size=0)
        .apply(Program.eager(module, inputs))
        .modified
    )


def test_a_model_without_an_embedding_is_refused():
    module = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ModelError, match="quantize-embedding: the model has no nn.Embedding"):
        QuantizeEmbeddingPass().apply(Program.eager(module, (torch.randn(2, 4),)))
