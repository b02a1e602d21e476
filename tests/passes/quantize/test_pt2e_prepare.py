from __future__ import annotations

import pytest
import torch

from pteflow.ir import Program, facts
from pteflow.ir.errors import ModelError, OptionError, PipelineError
from pteflow.passes import PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.quantize.pt2e import observer_nodes
from pteflow.passes.quantize.pt2e_prepare import Pt2ePreparePass

from .conftest import decode, fresh_module


def _observed(node_or_gm):
    return {n.args[0].name for n in observer_nodes(node_or_gm)}


def test_observes_each_linear_input_and_weight(aten_token_mlp):
    result = Pt2ePreparePass().apply(aten_token_mlp)
    assert result.modified and facts.PT2E_OBSERVED in result.program.facts
    gm = result.program.graph_modules()["forward"]
    # dynamic quantization: the activation into each linear and each weight
    assert _observed(gm) == {"embedding", "relu", "p_fc1_weight", "p_fc2_weight"}
    assert not observer_nodes(aten_token_mlp.graph_modules()["forward"])  # input untouched


def test_observers_do_not_change_the_outputs(aten_token_mlp):
    (tokens,) = aten_token_mlp.example_inputs["forward"]
    before = aten_token_mlp.exported_programs()["forward"].module()(tokens)
    after = Pt2ePreparePass().apply(aten_token_mlp).program
    torch.testing.assert_close(
        after.exported_programs()["forward"].module()(tokens), before, atol=0, rtol=0
    )


@pytest.mark.parametrize(
    ("quantizer", "observers"),
    [
        ("xnnpack-dynamic", 2 * 15),  # every linear of the Llama: activation + weight
        ("xnnpack-dynamic-qc4", 2 * 15),
    ],
)
def test_tiny_llama_every_linear_observed(aten_llama, quantizer, observers):
    out = Pt2ePreparePass(quantizer=quantizer).apply(aten_llama).program
    ep = out.exported_programs()["forward"]
    # Activations shared by several linears (q, k and v read one input) get one observer.
    weights = {n for n in _observed(ep.graph_module) if n.startswith("p_")}
    assert len(weights) == 15
    assert 15 < len(observer_nodes(ep.graph_module)) <= observers
    torch.testing.assert_close(
        decode(fresh_module(ep), [3, 4]),
        decode(fresh_module(aten_llama.exported_programs()["forward"]), [3, 4]),
        atol=0,
        rtol=0,
    )


def test_static_quantizer_also_observes_outputs(aten_token_mlp):
    out = Pt2ePreparePass(quantizer="xnnpack-static").apply(aten_token_mlp).program
    observed = _observed(out.graph_modules()["forward"])
    # static activations: linear+relu is one pattern (observed after the relu), and the
    # final linear's output is observed as well
    assert observed == {"embedding", "relu", "linear_1", "p_fc1_weight", "p_fc2_weight"}


def test_unknown_quantizer_is_refused_with_the_known_ones():
    with pytest.raises(
        OptionError,
        match=r"pt2e-prepare\.quantizer: 'qnn' is not one of "
        r"'xnnpack-dynamic', 'xnnpack-dynamic-qc4', "
        r"'xnnpack-static'",
    ):
        Pt2ePreparePass(quantizer="qnn")


def test_refuses_a_program_a_source_pass_quantized(aten_token_mlp):
    program = aten_token_mlp.with_facts(gained=[facts.QUANTIZED_8DA4W])
    with pytest.raises(PipelineError, match="already quantized .quantized.8da4w.; use either"):
        Pt2ePreparePass().apply(program)


def test_refuses_to_prepare_twice(aten_token_mlp):
    once = Pt2ePreparePass().apply(aten_token_mlp).program.with_facts(lost=[facts.PT2E_OBSERVED])
    with pytest.raises(PipelineError, match="already has pt2e observers"):
        Pt2ePreparePass().apply(once)


def test_a_model_with_nothing_to_quantize_is_named():
    class Scale(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2

    aten = TorchExportPass().apply(Program.eager(Scale(), (torch.randn(2, 3),))).program
    with pytest.raises(
        ModelError,
        match="found nothing to quantize in method 'forward' "
        r"\(it quantizes linear layers\); pt2e-prepare\{allow_unquantized=true\} compiles it",
    ):
        Pt2ePreparePass().apply(aten)


def test_allow_unquantized_compiles_such_a_model_in_float_and_says_so():
    """What upstream's prepare_pt2e does with a model its quantizer finds nothing in."""
    from pteflow.passes.quantize.pt2e_calibrate import Pt2eCalibratePass
    from pteflow.passes.quantize.pt2e_convert import Pt2eConvertPass

    class Scale(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2

    x = torch.randn(2, 3)
    aten = TorchExportPass().apply(Program.eager(Scale(), (x,))).program
    prepare = Pt2ePreparePass.from_spec("pt2e-prepare{allow_unquantized=true}")
    run = PassManager([prepare, Pt2eCalibratePass(), Pt2eConvertPass()]).run(aten)
    gm = run.program.graph_modules()["forward"]
    assert not any("quantize" in str(n.target) for n in gm.graph.nodes)
    torch.testing.assert_close(run.program.exported_programs()["forward"].module()(x), x.relu() * 2)
    log = next(r.log for r in run.records if r.name == "pt2e-prepare")
    assert log == ("forward: nothing to quantize; left unquantized (allow_unquantized)",)


def test_the_manager_accepts_the_observed_program(aten_token_mlp):
    PassManager([Pt2ePreparePass()], verify="each").run(aten_token_mlp)
