from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from pteflow.ir import facts, invariants
from pteflow.ir.facts_quant import PT2E_NO_OBSERVERS
from pteflow.ir.views import op_histogram
from pteflow.passes import plan
from pteflow.passes.quantize.pt2e import make_quantizer, observer_nodes
from pteflow.passes.quantize.pt2e_calibrate import Pt2eCalibratePass
from pteflow.passes.quantize.pt2e_convert import Pt2eConvertPass
from pteflow.passes.quantize.pt2e_prepare import Pt2ePreparePass

from .conftest import decode, fresh_module, rel_err

qd = torch.ops.quantized_decomposed
LLAMA_PROMPT = [7, 300, 12, 41]


def pt2e(program, quantizer, **calibration):
    observed = Pt2ePreparePass(quantizer=quantizer).apply(program).program
    calibrated = Pt2eCalibratePass(**calibration).apply(observed).program
    return calibrated, Pt2eConvertPass().apply(calibrated)


def _builder(program, quantizer, feed):
    """LLMEdgeManager.pt2e_quantize on the same exported program: prepare ep.module(),
    calibrate, convert, DuplicateDynamicQuantChainPass, then the second export."""
    from executorch.backends.transforms.duplicate_dynamic_quant_chain import (
        DuplicateDynamicQuantChainPass,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    ep = program.exported_programs()["forward"]
    with sdpa_kernel([SDPBackend.MATH]), torch.no_grad():
        module = prepare_pt2e(fresh_module(ep), make_quantizer(quantizer))
        feed(module)
        module = convert_pt2e(module)
        DuplicateDynamicQuantChainPass()(module)
        again = torch.export.export(
            module,
            tuple(program.example_inputs["forward"]),
            dynamic_shapes=program.dynamic_shapes.get("forward"),
        )
        return again.run_decompositions({})


def test_contract_and_structure(aten_token_mlp):
    _, result = pt2e(aten_token_mlp, "xnnpack-dynamic")
    out = result.program
    assert result.modified
    assert facts.QUANTIZED_PT2E in out.facts
    assert not out.facts & {facts.PT2E_OBSERVED, facts.PT2E_CALIBRATED}
    ep = out.exported_programs()["forward"]
    assert not observer_nodes(ep.graph_module)
    ops = op_histogram(out)
    # per linear: dynamic per-token activation quantization, folded int8 weight
    assert ops[qd.choose_qparams.tensor] == 2
    assert ops[qd.quantize_per_tensor.tensor] == 2
    assert ops[qd.dequantize_per_tensor.tensor] == 2
    assert ops[qd.dequantize_per_channel.default] == 2
    assert ops[qd.quantize_per_channel.default] == 0  # weights were quantized at convert
    assert "fc1.weight" not in ep.state_dict and "fc1.bias" in ep.state_dict
    int8 = [t for t in ep.state_dict.values() if t.dtype == torch.int8]
    assert sorted(t.shape for t in int8) == [(64, 128), (128, 64)]
    invariants.check_level(out)  # a valid ExportedProgram: lint, meta['val'] everywhere
    assert facts.QUANTIZED_PT2E.check(out) is None


def test_no_second_export(aten_token_mlp):
    """The converted graph is the first export's graph, edited: same fake mode, same
    node metadata objects, and the nodes convert did not touch keep their names."""
    from torch._guards import detect_fake_mode

    def fake_mode(ep):
        return detect_fake_mode(
            tuple(n.meta["val"] for n in ep.graph.nodes if n.op == "placeholder")
        )

    before = aten_token_mlp.exported_programs()["forward"]
    _, result = pt2e(aten_token_mlp, "xnnpack-dynamic")
    after = result.program.exported_programs()["forward"]
    assert fake_mode(after) is fake_mode(before)
    relu = lambda ep: next(n for n in ep.graph.nodes if n.target == torch.ops.aten.relu.default)  # noqa: E731
    assert relu(after).meta["val"] is relu(before).meta["val"]


@pytest.mark.parametrize("quantizer", ["xnnpack-dynamic", "xnnpack-static"])
def test_equals_the_builders_second_export(aten_token_mlp, quantizer):
    """Same graph op for op and the same outputs as ExecuTorch's flow, which exports
    the converted module again; and the calibrated fake-quant model's outputs within
    quantization tolerance."""
    (tokens,) = aten_token_mlp.example_inputs["forward"]
    calibrated, result = pt2e(aten_token_mlp, quantizer)
    ours = result.program.exported_programs()["forward"]
    theirs = _builder(aten_token_mlp, quantizer, lambda m: m(tokens))
    assert op_histogram(result.program) == op_histogram(
        result.program.evolve(artifact={"forward": theirs})
    )
    with torch.no_grad():
        got = ours.module()(tokens)
        torch.testing.assert_close(got, theirs.module()(tokens), atol=0, rtol=0)
        observed = calibrated.exported_programs()["forward"].module()(tokens)
        fp32 = aten_token_mlp.exported_programs()["forward"].module()(tokens)
    torch.testing.assert_close(observed, fp32, atol=0, rtol=0)  # observers only watch
    assert rel_err(got, fp32) < 0.05  # int8 weights and activations


def test_the_calibrated_graph_run_through_convert_unfolded_agrees(aten_token_mlp):
    """convert_pt2e without weight folding keeps quantize ops on the float weights; the
    lifted-constant folding pteflow relies on gives exactly the same outputs."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from pteflow.passes.quantize.pt2e import copy_graph_module

    (tokens,) = aten_token_mlp.example_inputs["forward"]
    calibrated, result = pt2e(aten_token_mlp, "xnnpack-static")
    ep = calibrated.exported_programs()["forward"]
    unfolded = convert_pt2e(
        copy_graph_module(ep.graph_module, copy_observers=True), fold_quantize=False
    )
    flat = ep._graph_module_flat_inputs((tokens,), {})
    with torch.no_grad():
        want = unfolded(*flat)[0]
        got = result.program.exported_programs()["forward"].module()(tokens)
    torch.testing.assert_close(got, want, atol=0, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("quantizer", ["xnnpack-dynamic"])  # static: same result, ~45 s here
def test_tiny_llama_equals_the_builders_second_export(aten_llama, tmp_path, quantizer):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(" ".join(map(str, LLAMA_PROMPT)))
    _, result = pt2e(aten_llama, quantizer, prompt_file=str(prompt))
    invariants.check_level(result.program)

    def feed(module):
        for pos, token in enumerate(LLAMA_PROMPT):
            module(torch.tensor([[token]]), {"input_pos": torch.tensor([pos])})

    theirs = _builder(aten_llama, quantizer, feed)
    ours = result.program.exported_programs()["forward"]
    assert op_histogram(result.program) == op_histogram(
        result.program.evolve(artifact={"forward": theirs})
    )
    steps = [1, 5, 9, 200, 33]
    with sdpa_kernel([SDPBackend.MATH]):
        got = decode(fresh_module(ours), steps)
        want = decode(fresh_module(theirs), steps)
        fp32 = decode(fresh_module(aten_llama.exported_programs()["forward"]), steps)
    for g, w, f in zip(got, want, fp32, strict=True):
        torch.testing.assert_close(g, w, atol=0, rtol=0)
        assert rel_err(g, f) < 0.1


@pytest.mark.slow
def test_lowers_to_xnnpack_and_runs_like_the_builders_pte(aten_token_mlp):
    """The .pte of the converted program delegates the same ops and computes the same
    logits in the ExecuTorch runtime as the .pte of ExecuTorch's flow."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    from pteflow.ir import Level, Program
    from pteflow.ir.evaluate import load_runtime_program
    from pteflow.ir.views import delegated_node_count

    (tokens,) = aten_token_mlp.example_inputs["forward"]
    _, result = pt2e(aten_token_mlp, "xnnpack-dynamic")
    theirs = _builder(aten_token_mlp, "xnnpack-dynamic", lambda m: m(tokens))
    outputs, delegated = [], []
    for ep in (result.program.exported_programs()["forward"], theirs):
        with torch.no_grad():
            edge = to_edge_transform_and_lower(
                ep,
                partitioner=[XnnpackPartitioner()],
                compile_config=EdgeCompileConfig(_check_ir_validity=False),
            )
        program = Program(Level.EDGE, edge, {"forward": (tokens,)})
        assert facts.QUANTIZED_PT2E.check(program) is None
        delegated.append(delegated_node_count(program))
        loaded = load_runtime_program(edge.to_executorch().buffer)
        outputs.append(loaded.load_method("forward").execute([tokens])[0])
    assert delegated[0] == delegated[1] and delegated[0]["XnnpackBackend"] > 0
    torch.testing.assert_close(outputs[0], outputs[1], atol=0, rtol=0)


def test_needs_calibration_and_ends_the_observers():
    info = Pt2eConvertPass.info
    assert info.requires == {facts.PT2E_CALIBRATED}
    assert info.provides == {facts.QUANTIZED_PT2E, PT2E_NO_OBSERVERS}
    assert info.invalidates == {facts.PT2E_OBSERVED, facts.PT2E_CALIBRATED}


def test_prepare_without_convert_is_refused_by_the_plan():
    """Observers cannot be lowered: to-edge needs pt2e.no-observers, which pt2e-prepare
    takes away and only pt2e-convert gives back (else to_edge fails on the observers)."""
    from pteflow.ir.errors import UnsatisfiedError
    from pteflow.passes.convert.export import TorchExportPass
    from pteflow.passes.convert.to_edge import ToEdgePass

    with pytest.raises(UnsatisfiedError, match="pt2e-prepare#0 invalidates it"):
        plan([Pt2ePreparePass(), Pt2eCalibratePass(), TorchExportPass(), ToEdgePass()])
    ordered = plan(
        [Pt2ePreparePass(), Pt2eCalibratePass(), Pt2eConvertPass(), TorchExportPass(), ToEdgePass()]
    ).ordered_passes()
    assert [p.name for p in ordered][-2:] == ["pt2e-convert", "to-edge"]


def test_the_checkpoint_pages_the_folder_read_are_handed_back(tmp_path):
    """torchao's constant folder reads every float weight to quantize it; the memory-mapped
    checkpoint's pages of each must not stay resident beside the folded values (at
    stories, 58 MB of pt2e-convert's peak, the run's), and the result is the same."""
    from pteflow.ir import Program, mapped_pages
    from pteflow.passes.convert.export import TorchExportPass

    from ...mapped_files import memory_mapped, resident_kb
    from .conftest import TokenMLP

    def converted(path):
        torch.manual_seed(0)
        module = memory_mapped(TokenMLP(vocab=64, dim=512, hidden=1024).eval(), path)
        inputs = (torch.randint(0, 64, (1, 8), generator=torch.Generator().manual_seed(0)),)
        aten = TorchExportPass().apply(Program.eager(module, inputs)).program
        observed = Pt2ePreparePass(quantizer="xnnpack-static").apply(aten).program
        calibrated = Pt2eCalibratePass().apply(observed).program
        mapped_pages.release_mapped_files()  # what calibration read
        assert resident_kb(path) == 0
        return Pt2eConvertPass().apply(calibrated).program

    path = tmp_path / "weights.pth"
    out = converted(path)
    assert resident_kb(path) < 1024  # kB; 4 MB of linear weights were read
    folded = {
        k: v
        for k, v in out.exported_programs()["forward"].state_dict.items()
        if v.dtype == torch.int8
    }
    assert len(folded) == 2  # the linears' weights, quantized

    import contextlib

    from pteflow.passes.quantize import pt2e as pt2e_module

    with pytest.MonkeyPatch.context() as m:
        m.setattr(pt2e_module, "folded_weights_pages_released", contextlib.nullcontext)
        other = tmp_path / "again.pth"
        upstream = converted(other)
        assert resident_kb(other) >= 4096  # the folder alone leaves them resident
    theirs = upstream.exported_programs()["forward"].state_dict
    assert all(torch.equal(v, theirs[k]) for k, v in folded.items())


def test_the_folder_does_not_compute_the_dequantized_weights(monkeypatch):
    """torchao's constant folder computes every dequantize node's value (a float copy of
    the weight) only to throw it away: it keeps ``q -> dq`` in the graph. pteflow reports
    such a node unknown without computing it (at stories the output layer's alone raised
    pt2e-convert's peak by ~50 MB); the folded program is the same."""
    import contextlib

    from pteflow.ir import Program
    from pteflow.passes.convert.export import TorchExportPass
    from pteflow.passes.quantize import pt2e as pt2e_module

    from .conftest import TokenMLP

    dequantize = {qd.dequantize_per_channel.default, qd.dequantize_per_tensor.default}
    computed: list = []
    run_node = torch.fx.Interpreter.run_node

    def recorded(self, node):
        computed.append(node.target)
        return run_node(self, node)

    def converted():
        torch.manual_seed(0)
        module = TokenMLP(vocab=64, dim=64, hidden=128).eval()
        inputs = (torch.randint(0, 64, (1, 8), generator=torch.Generator().manual_seed(0)),)
        aten = TorchExportPass().apply(Program.eager(module, inputs)).program
        observed = Pt2ePreparePass(quantizer="xnnpack-static").apply(aten).program
        calibrated = Pt2eCalibratePass().apply(observed).program
        computed.clear()
        with monkeypatch.context() as m:
            m.setattr(torch.fx.Interpreter, "run_node", recorded)
            out = Pt2eConvertPass().apply(calibrated).program
        return out, [t for t in computed if t in dequantize]

    ours, dequantized = converted()
    assert dequantized == []
    with monkeypatch.context() as m:
        m.setattr(pt2e_module, "dequantized_weights_not_computed", contextlib.nullcontext)
        theirs, dequantized = converted()
    assert dequantized  # upstream's folder alone computes them
    mine = ours.exported_programs()["forward"]
    other = theirs.exported_programs()["forward"]
    assert mine.state_dict.keys() == other.state_dict.keys()
    assert all(torch.equal(v, other.state_dict[k]) for k, v in mine.state_dict.items())
    assert str(mine.graph) == str(other.graph)
