from __future__ import annotations

import json

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from pteflow.ir import facts
from pteflow.ir.errors import ModelError, OptionError
from pteflow.passes.quantize.pt2e import copy_graph_module, observer_nodes, with_graph_module
from pteflow.passes.quantize.pt2e_calibrate import Pt2eCalibratePass
from pteflow.passes.quantize.pt2e_prepare import Pt2ePreparePass

from .conftest import fresh_module


def _stats(program) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """min/max seen by each activation observer (keyed by the observed node)."""
    gm = program.graph_modules()["forward"]
    out = {}
    for node in observer_nodes(gm):
        obs = gm.get_submodule(node.target)
        if not node.args[0].name.startswith("p_"):  # weights are observed at convert
            out[node.args[0].name] = (obs.min_val.clone(), obs.max_val.clone())
    return out


def _seen(stats) -> bool:
    return all(lo.numel() and torch.isfinite(lo).all() for lo, _ in stats.values())


@pytest.fixture(scope="module")
def observed_mlp(aten_token_mlp):
    return Pt2ePreparePass(quantizer="xnnpack-static").apply(aten_token_mlp).program


@pytest.fixture(scope="module")
def observed_llama(aten_llama):
    return Pt2ePreparePass(quantizer="xnnpack-static").apply(aten_llama).program


def test_example_inputs_by_default_and_the_input_program_is_untouched(observed_mlp):
    result = Pt2eCalibratePass().apply(observed_mlp)
    assert result.modified and facts.PT2E_CALIBRATED in result.program.facts
    assert _seen(_stats(result.program))
    assert not _seen(_stats(observed_mlp))  # observers of the input were copied, not fed


def test_samples_feed_seeded_variants_of_a_plain_models_inputs(observed_mlp):
    one = _stats(Pt2eCalibratePass().apply(observed_mlp).program)
    many = _stats(Pt2eCalibratePass(samples=4).apply(observed_mlp).program)
    again = _stats(Pt2eCalibratePass(samples=4).apply(observed_mlp).program)
    other = _stats(Pt2eCalibratePass(samples=4, seed=1).apply(observed_mlp).program)
    assert one["embedding"][0] >= many["embedding"][0]  # more data: a wider range
    for name in many:
        torch.testing.assert_close(many[name], again[name], atol=0, rtol=0)
    assert any(not torch.equal(many[n][1], other[n][1]) for n in many)


def _kv_caches(program) -> list[torch.Tensor]:
    ep = program.exported_programs()["forward"]
    return [ep.state_dict[t] for t in ep.graph_signature.buffers_to_mutate.values()]


@pytest.mark.slow
@pytest.mark.parametrize("form", ["json", "words"])
def test_prompt_file_feeds_tokens_one_at_a_time_like_builder(observed_llama, tmp_path, form):
    ids = [7, 300, 12, 41, 5]
    path = tmp_path / "prompt.txt"
    path.write_text(json.dumps(ids) if form == "json" else "7 300\n12\t41 5\n")
    out = Pt2eCalibratePass(prompt_file=str(path)).apply(observed_llama).program

    # builder.pt2e_calibrate with use_kv_cache: one token per call, input_pos counting up
    ep = observed_llama.exported_programs()["forward"]
    ref = with_graph_module(ep, copy_graph_module(ep.graph_module, copy_observers=True))
    module = fresh_module(ref)
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        for pos, token in enumerate(ids):
            module(torch.tensor([[token]]), {"input_pos": torch.tensor([pos])})
    got, want = _stats(out), _stats(observed_llama.evolve(artifact={"forward": ref}))
    assert got.keys() == want.keys() and _seen(got)
    for name in got:
        torch.testing.assert_close(got[name], want[name], atol=0, rtol=0)
    assert all(not c.any() for c in _kv_caches(out))  # the program's KV cache stays empty


@pytest.mark.slow
def test_random_tokens_are_seeded(observed_llama):
    a = _stats(Pt2eCalibratePass(samples=3).apply(observed_llama).program)
    b = _stats(Pt2eCalibratePass(samples=3).apply(observed_llama).program)
    c = _stats(Pt2eCalibratePass(samples=3, seed=3).apply(observed_llama).program)
    assert _seen(a)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=0, rtol=0)
    assert any(not torch.equal(a[n][1], c[n][1]) for n in a)


@pytest.mark.slow
def test_more_tokens_than_the_cache_holds_is_refused(observed_llama):
    with pytest.raises(
        ModelError, match="gives 129 tokens, more than the model's maximum sequence length 128"
    ):
        Pt2eCalibratePass(samples=129).apply(observed_llama)


@pytest.mark.slow
def test_token_ids_outside_the_vocabulary_are_refused(observed_llama, tmp_path):
    path = tmp_path / "ids.json"
    path.write_text("[1, 2, 512]")
    with pytest.raises(
        ModelError,
        match=r"holds token id 512, outside the vocabulary of "
        r"method 'forward' \(size 512\)",
    ):
        Pt2eCalibratePass(prompt_file=str(path)).apply(observed_llama)


def test_a_prompt_file_needs_a_kv_cache_llm(observed_mlp, tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("1 2 3")
    with pytest.raises(ModelError, match="a prompt file feeds a KV-cache LLM"):
        Pt2eCalibratePass(prompt_file=str(path)).apply(observed_mlp)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, r"cannot read '.*missing.json': No such file or directory"),
        ("[1, 2", r"is not valid JSON .* expected a JSON list of ints or whitespace-separated"),
        ('{"ids": [1]}', r"holds a dict; expected a JSON list of ints"),
        ("[1, 2.5]", r"item 1 is 2.5, not an int"),
        ("1 2 three", r"word 2 is 'three', not an int"),
        ("  \n", r"holds no token ids"),
        ("[3, -1]", r"token id -1 is negative"),
    ],
)
def test_unreadable_or_malformed_prompt_files_are_refused(tmp_path, text, message):
    path = tmp_path / "missing.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(OptionError, match=r"pt2e-calibrate\.prompt_file: .*" + message):
        Pt2eCalibratePass(prompt_file=str(path))


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_samples_must_be_positive(bad):
    with pytest.raises(OptionError, match=r"pt2e-calibrate\.samples: must be a positive"):
        Pt2eCalibratePass(samples=bad)


def test_needs_observers_first():
    assert Pt2eCalibratePass.info.requires == {facts.PT2E_OBSERVED}


def _aliases(program) -> set[frozenset[str]]:
    """Groups of observer names that are one observer (a shared quantization spec)."""
    gm = program.graph_modules()["forward"]
    by_id: dict[int, set[str]] = {}
    for node in observer_nodes(gm):
        by_id.setdefault(id(gm.get_submodule(node.target)), set()).add(node.target)
    return {frozenset(names) for names in by_id.values() if len(names) > 1}


@pytest.mark.slow
def test_observers_shared_between_nodes_stay_shared(observed_llama):
    shared = _aliases(observed_llama)
    assert shared  # RMSNorm's mean shares its input's observer under the static quantizer
    assert _aliases(Pt2eCalibratePass().apply(observed_llama).program) == shared
