from __future__ import annotations

import pytest
import torch

from pteflow.ir import Program, facts
from pteflow.ir.errors import ModelError
from pteflow.ir.views import op_histogram
from pteflow.passes import plan
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.quantize.quantize_8da4w import Quantize8da4wPass
from pteflow.passes.quantize.quantize_embedding import QuantizeEmbeddingPass
from pteflow.passes.quantize.quantize_int8_weight import QuantizeInt8WeightPass

from .conftest import rel_err, token_mlp


def _int8_class():
    from executorch.examples.models.llama.source_transformation.quantize import (
        WeightOnlyInt8Linear,
    )

    return WeightOnlyInt8Linear


def test_replaces_every_linear_and_leaves_the_input_program(eager_token_mlp):
    before = eager_token_mlp.modules()["forward"]
    result = QuantizeInt8WeightPass().apply(eager_token_mlp)
    assert result.modified
    after = result.program.modules()["forward"]
    for name in ("fc1", "fc2"):
        layer = getattr(after, name)
        assert isinstance(layer, _int8_class())
        assert layer.weight.dtype == torch.int8 and layer.scales.dtype == torch.bfloat16
    assert type(before.fc1) is torch.nn.Linear  # the input program is untouched
    assert facts.QUANTIZED_INT8_WEIGHT in result.program.facts
    assert not QuantizeInt8WeightPass().apply(result.program).modified  # nothing left to do


def test_same_weights_and_outputs_as_export_llamas_handler():
    """Without biases (ExecuTorch's handler cannot take one) the modules are the same."""
    from executorch.examples.models.llama.source_transformation.quantize import (
        get_quant_weight_transform,
    )

    module, inputs = token_mlp(bias=False)
    ours = QuantizeInt8WeightPass().apply(Program.eager(module, inputs)).program
    ours = ours.modules()["forward"]
    theirs, _ = token_mlp(bias=False)
    theirs = get_quant_weight_transform("int8")(theirs)
    for name in ("fc1", "fc2"):
        assert type(getattr(ours, name)) is type(getattr(theirs, name)) is _int8_class()
        for buf in ("weight", "scales"):
            torch.testing.assert_close(
                getattr(getattr(ours, name), buf),
                getattr(getattr(theirs, name), buf),
                atol=0,
                rtol=0,
            )
    with torch.no_grad():
        torch.testing.assert_close(ours(*inputs), theirs(*inputs), atol=0, rtol=0)


def test_output_within_int8_tolerance_of_fp32(eager_token_mlp):
    (tokens,) = eager_token_mlp.example_inputs["forward"]
    with torch.no_grad():
        want = eager_token_mlp.modules()["forward"](tokens)
        got = QuantizeInt8WeightPass().apply(eager_token_mlp).program.modules()["forward"](tokens)
    # per-channel int8 weights, bfloat16 scales: well under 1% relative error
    assert rel_err(got, want) < 0.01


def test_exported_graph_casts_an_int8_constant_into_each_linear(eager_token_mlp):
    aten = TorchExportPass().apply(QuantizeInt8WeightPass().apply(eager_token_mlp).program).program
    ops = op_histogram(aten)
    aten_ops = torch.ops.aten
    assert ops[aten_ops._to_copy.default] == 2  # int8 weight -> float
    assert ops[aten_ops.linear.default] == 2
    assert ops[aten_ops.mul.Tensor] == 2  # * scales
    assert ops[aten_ops.add.Tensor] == 2  # + bias
    ep = aten.exported_programs()["forward"]
    casts = [n for n in ep.graph.nodes if n.target == aten_ops._to_copy.default]
    assert all(
        n.args[0].op == "placeholder" and n.args[0].meta["val"].dtype == torch.int8 for n in casts
    )


def test_the_int8_fact_holds_on_the_exported_graph(eager_token_mlp):
    aten = TorchExportPass().apply(QuantizeInt8WeightPass().apply(eager_token_mlp).program).program
    assert facts.QUANTIZED_INT8_WEIGHT.check(aten) is None


def test_a_model_that_is_one_linear_is_refused():
    with pytest.raises(ModelError, match="is itself an nn.Linear; wrap it"):
        QuantizeInt8WeightPass().apply(Program.eager(torch.nn.Linear(4, 4), (torch.randn(1, 4),)))


def test_runs_after_embedding_quantization():
    order = plan([QuantizeInt8WeightPass(), QuantizeEmbeddingPass()]).ordered_passes()
    assert [p.name for p in order] == ["quantize-embedding", "quantize-int8-weight"]


def test_leaves_linears_another_pass_quantized(eager_token_mlp):
    quantized = Quantize8da4wPass().apply(eager_token_mlp).program
    assert not QuantizeInt8WeightPass().apply(quantized).modified


def test_a_model_without_linear_layers_is_refused():
    with pytest.raises(ModelError, match="quantize-int8-weight: the model has no nn.Linear"):
        QuantizeInt8WeightPass().apply(Program.eager(torch.nn.ReLU(), (torch.randn(2, 4),)))
