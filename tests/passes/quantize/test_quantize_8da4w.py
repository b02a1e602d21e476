from __future__ import annotations

import pytest
import torch

from pteflow.ir import Level, facts
from pteflow.ir.errors import ModelError, OptionError
from pteflow.ir.views import op_histogram
from pteflow.passes import plan
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.quantize.quantize_8da4w import Quantize8da4wPass
from pteflow.passes.quantize.quantize_embedding import QuantizeEmbeddingPass

from .conftest import decode, rel_err, token_mlp


def _is_8da4w(weight: torch.Tensor) -> bool:
    from torchao.quantization import IntxUnpackedToInt8Tensor

    return isinstance(weight, IntxUnpackedToInt8Tensor) and weight.target_dtype == torch.int4


def test_quantizes_every_linear_and_leaves_the_input_program(eager_token_mlp):
    before = eager_token_mlp.modules()["forward"]
    result = Quantize8da4wPass().apply(eager_token_mlp)
    assert result.modified
    after = result.program.modules()["forward"]
    assert _is_8da4w(after.fc1.weight) and _is_8da4w(after.fc2.weight)
    assert after.fc1.weight.block_size == (1, 32)
    assert type(after.emb) is torch.nn.Embedding and after.emb.weight is before.emb.weight
    assert type(before.fc1.weight) is torch.nn.Parameter  # the input program is untouched
    assert facts.QUANTIZED_8DA4W in result.program.facts


def test_second_run_changes_nothing(eager_token_mlp):
    once = Quantize8da4wPass().apply(eager_token_mlp).program
    twice = Quantize8da4wPass().apply(once)
    assert not twice.modified
    assert twice.program.modules()["forward"] is once.modules()["forward"]


def test_same_module_and_numerics_as_export_llama(eager_token_mlp):
    from executorch.examples.models.llama.source_transformation.quantize import (
        get_quant_weight_transform,
    )

    (tokens,) = eager_token_mlp.example_inputs["forward"]
    ours = Quantize8da4wPass(group_size=32, bf16_scales=False).apply(eager_token_mlp)
    ours = ours.program.modules()["forward"]
    theirs, _ = token_mlp()
    theirs = get_quant_weight_transform("8da4w", group_size=32)(theirs)
    for name in ("fc1", "fc2"):
        torch.testing.assert_close(
            getattr(ours, name).weight.qdata, getattr(theirs, name).weight.qdata, atol=0, rtol=0
        )
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), theirs(tokens), atol=0, rtol=0)


def test_scales_rounded_to_bf16_as_xnnpack_stores_them(eager_token_mlp):
    exact = Quantize8da4wPass(bf16_scales=False).apply(eager_token_mlp).program
    rounded = Quantize8da4wPass().apply(eager_token_mlp).program
    for name in ("fc1", "fc2"):
        a = getattr(exact.modules()["forward"], name).weight
        b = getattr(rounded.modules()["forward"], name).weight
        assert torch.equal(a.qdata, b.qdata)  # only the scales change
        assert not torch.equal(a.scale, b.scale)
        torch.testing.assert_close(b.scale, a.scale.to(torch.bfloat16).float(), atol=0, rtol=0)


def test_output_within_int4_tolerance_of_fp32(eager_token_mlp):
    (tokens,) = eager_token_mlp.example_inputs["forward"]
    with torch.no_grad():
        want = eager_token_mlp.modules()["forward"](tokens)
        got = Quantize8da4wPass().apply(eager_token_mlp).program.modules()["forward"](tokens)
    # int4 weights (16 levels, groups of 32) + int8 activations: ~10% relative error here
    assert rel_err(got, want) < 0.2


def test_exported_graph_has_the_torchao_8da4w_ops(eager_token_mlp):
    quantized = Quantize8da4wPass().apply(eager_token_mlp).program
    aten = TorchExportPass().apply(quantized).program
    ops = op_histogram(aten)
    torchao = torch.ops.torchao
    assert ops[torchao.choose_qparams_affine.default] == 2  # per-token activation qparams
    assert ops[torchao.quantize_affine.default] == 2
    assert ops[torchao.dequantize_affine.default] == 4  # two activations, two weights
    assert ops[torch.ops.aten.linear.default] == 2
    assert facts.QUANTIZED_8DA4W.check(aten) is None
    (tokens,) = quantized.example_inputs["forward"]
    with torch.no_grad():
        torch.testing.assert_close(
            aten.exported_programs()["forward"].module()(tokens),
            quantized.modules()["forward"](tokens),
        )


@pytest.mark.slow
def test_tiny_llama_every_linear_quantized_logits_close(eager_llama):
    reference = eager_llama.modules()["forward"]
    want = decode(reference, [1, 5, 9, 200])
    out = Quantize8da4wPass().apply(eager_llama).program
    model = out.modules()["forward"]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 * 7 + 1 and all(_is_8da4w(m.weight) for m in linears)
    got = decode(model, [1, 5, 9, 200])
    assert max(rel_err(g, w) for g, w in zip(got, want, strict=True)) < 0.2


@pytest.mark.parametrize("bad", [0, -32, 32.0, "32", True])
def test_group_size_must_be_a_positive_int(bad):
    with pytest.raises(OptionError, match=r"quantize-8da4w\.group_size: must be a positive"):
        Quantize8da4wPass(group_size=bad)


def test_group_size_that_does_not_divide_a_layer_names_it():
    from pteflow.ir import Program

    module, inputs = token_mlp(dim=48)  # fc1 has in_features 48; fc2 has 128
    with pytest.raises(
        ModelError,
        match=r"group_size 32 does not divide in_features 48 of "
        r"linear layer 'fc1'",
    ):
        Quantize8da4wPass(group_size=32).apply(Program.eager(module, inputs))
    # 16 divides both
    assert Quantize8da4wPass(group_size=16).apply(Program.eager(module, inputs)).modified


def test_runs_after_embedding_quantization_as_export_llama_orders_them():
    order = plan([Quantize8da4wPass(), QuantizeEmbeddingPass()]).ordered_passes()
    assert [p.name for p in order] == ["quantize-embedding", "quantize-8da4w"]
    assert Quantize8da4wPass.info.level_in == Level.EAGER == Quantize8da4wPass.info.level_out


def test_a_model_without_linear_layers_is_refused():
    from pteflow.ir import Program

    with pytest.raises(ModelError, match="quantize-8da4w: the model has no nn.Linear layer"):
        Quantize8da4wPass().apply(Program.eager(torch.nn.ReLU(), (torch.randn(2, 4),)))


@pytest.mark.slow
def test_xnnpack_takes_the_8da4w_linears_whole_and_the_pte_agrees(eager_token_mlp):
    """The trap export_llama's builder steps fall into: to_edge must keep aten.linear whole
    for XNNPACK's 8da4w pattern. In a pteflow pipeline the delegates hold
    torchao.dequantize_affine (int8 weight) -> aten.linear, and the .pte agrees with eager."""
    from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
    from pteflow.backends.xnnpack.partition_xnnpack_dq import PartitionXnnpackDqPass
    from pteflow.ir import evaluate, views
    from pteflow.ir.facts import op_name
    from pteflow.passes import PassManager
    from pteflow.passes.convert.to_edge import ToEdgePass
    from pteflow.passes.convert.to_executorch import ToExecutorchPass

    passes = [
        Quantize8da4wPass(),
        QuantizeEmbeddingPass(),
        TorchExportPass(),
        ToEdgePass(check_ir_validity=False),
        PartitionXnnpackDqPass(),
        PartitionXnnpackPass(),
    ]
    edge = PassManager(passes, verify="boundaries").run(eager_token_mlp).program
    assert facts.QUANTIZED_8DA4W.check(edge) is None
    assert facts.EMBEDDING_QUANTIZED.check(edge) is None
    top = {op_name(op) for op in op_histogram(edge)}
    assert "quantized_decomposed.embedding_4bit.dtype" in top  # stays on portable kernels
    weights_into = set()
    for gm in edge.graph_modules().values():
        for lowered in views.lowered_modules(gm):
            for node in lowered.original_module.graph.nodes:
                if (
                    node.op == "call_function"
                    and op_name(node.target) == "torchao.dequantize_affine.default"
                    and node.args[0].op == "placeholder"
                ):
                    weights_into |= {op_name(u.target) for u in node.users}
    assert weights_into == {"aten.linear.default"}

    (tokens,) = eager_token_mlp.example_inputs["forward"]
    pte = ToExecutorchPass().apply(edge).program
    got = evaluate.run_method(pte, "forward", (tokens,))[0]
    with torch.no_grad():
        want = PassManager(passes[:2]).run(eager_token_mlp).program.modules()["forward"](tokens)
    # XNNPACK's int4 kernels vs torchao's reference: 3e-3 on outputs of magnitude 0.8 here
    torch.testing.assert_close(got, want, atol=2e-2, rtol=0)
