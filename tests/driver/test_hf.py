"""``--hf DIR`` without exporting: loading matches transformers' forward, the metadata, and
one line, exit 2, for every refusal (no network access, ever)."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import torch

from pteflow.driver.models import decode_steps
from pteflow.driver.models.metadata import parse_metadata, runner_ids
from pteflow.ir import Program
from pteflow.ir.errors import ModelError
from pteflow.passes.convert.to_edge import constant_methods

from ._helpers import run

transformers = pytest.importorskip("transformers")
from pteflow.driver.models.hf import ARCHITECTURES, from_hf  # noqa: E402
from pteflow.hf_testing import write_hf_model  # noqa: E402

TOKENS = [1, 40, 7, 300, 12, 99, 5, 250, 17, 3, 64, 128, 200, 9, 31, 77, 150, 2]


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def hf_dir(request, tmp_path_factory) -> Path:
    return write_hf_model(tmp_path_factory.mktemp(request.param), request.param)


def _hf_logits(path: Path, tokens: list[int]) -> torch.Tensor:
    model = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0]


def _decode(model, tokens: list[int]) -> torch.Tensor:
    module = model.reference["forward"]
    with torch.no_grad():
        return torch.stack([module(*inputs)[0] for _, inputs in decode_steps(tokens)])


def test_the_eager_model_matches_transformers_step_by_step(hf_dir):
    model = from_hf(hf_dir, max_seq_len=32)
    want = _hf_logits(hf_dir, TOKENS)
    torch.testing.assert_close(_decode(model, TOKENS), want, atol=1e-4, rtol=0)


def test_the_runner_metadata_holds_the_checkpoints_ids(hf_dir):
    meta = from_hf(hf_dir, max_seq_len=32).program.metadata
    generation = json.loads((hf_dir / "generation_config.json").read_text())
    config = json.loads((hf_dir / "config.json").read_text())
    assert meta["get_bos_id"] == config["bos_token_id"] == 1
    assert meta["get_eos_ids"] == generation["eos_token_id"] == [2, 3]
    assert meta["get_max_seq_len"] == 32 and meta["get_vocab_size"] == config["vocab_size"]
    assert constant_methods(Program.eager(torch.nn.Identity(), (), metadata=meta))[
        "get_eos_ids"
    ] == [2, 3]


def test_sharded_weights_load_as_the_single_file(tmp_path):
    arch = "Qwen2ForCausalLM"
    single = write_hf_model(tmp_path / "one", arch)
    sharded = write_hf_model(tmp_path / "many", arch, shards="40KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    assert len(list(sharded.glob("model-*.safetensors"))) > 1
    a, b = from_hf(single, max_seq_len=16), from_hf(sharded, max_seq_len=16)
    wa, wb = a.reference["forward"].state_dict(), b.reference["forward"].state_dict()
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # the same weights, bit for bit
    # the outputs only up to rounding: the tensors are memory-mapped where each file put
    # them, and the kernels may take another path for another alignment
    torch.testing.assert_close(_decode(a, TOKENS[:6]), _decode(b, TOKENS[:6]), atol=1e-5, rtol=0)


def test_weights_are_memory_mapped_not_copied(tmp_path):
    path = write_hf_model(tmp_path / "m", "Qwen2ForCausalLM")
    module = from_hf(path, max_seq_len=16).program.modules()["forward"]
    weight = module.layers[0].attention.wv.weight
    mapped = [
        line for line in Path("/proc/self/maps").read_text().splitlines() if str(path) in line
    ]
    ranges = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in mapped]
    assert any(lo <= weight.data_ptr() < hi for lo, hi in ranges)


# ------------------------------------------------------------------------ refusals


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory) -> Path:
    return write_hf_model(tmp_path_factory.mktemp("qwen3"), "Qwen3ForCausalLM")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_config(path: Path, **changes) -> Path:
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))
    return path


def _refused(capsys, *argv: str) -> str:
    capsys.readouterr()  # transformers' progress bars while a fixture wrote the model
    code, out, err = run(capsys, "run", "--pipeline", "xnnpack_default", "--no-cache", *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("driver: error:"), err
    assert "Traceback" not in err and not out.count("wrote")
    return lines[0]


def test_a_hub_name_is_refused_without_touching_the_network(capsys, monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.chdir(tmp_path)
    line = _refused(capsys, "--hf", "Qwen/Qwen3-0.6B")
    assert "huggingface-cli download Qwen/Qwen3-0.6B --local-dir DIR" in line


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d, t: t / "nowhere", "no such directory"),
        (lambda d, t: d / "config.json", "is a file"),
        (lambda d, t: (t / "empty").mkdir() or t / "empty", "no config.json"),
        (
            lambda d, t: _edit_config(_copy(d, t / "m"), architectures=["GPT2LMHeadModel"]),
            "architecture GPT2LMHeadModel is not supported; pteflow builds LlamaForCausalLM",
        ),
        (
            lambda d, t: _edit_config(_copy(d, t / "m"), attention_bias=True),
            "attention_bias",
        ),
        (
            lambda d, t: _edit_config(
                _copy(d, t / "m"), rope_parameters={"rope_type": "yarn", "factor": 4.0}
            ),
            "RoPE scaling 'yarn' is not supported",
        ),
        (
            lambda d, t: _edit_config(_copy(d, t / "m"), hidden_size=96),
            "has shape",
        ),
        (
            lambda d, t: (_copy(d, t / "m") / "model.safetensors").unlink() or t / "m",
            "no model.safetensors and no model.safetensors.index.json",
        ),
    ],
    ids=["missing", "file", "no-config", "arch", "o-bias", "yarn", "shapes", "no-weights"],
)
def test_refusals(capsys, qwen3, tmp_path, make, expected):
    assert expected in _refused(capsys, "--hf", str(make(qwen3, tmp_path)))


def test_a_missing_or_mismatched_shard_is_refused(capsys, tmp_path):
    path = write_hf_model(tmp_path / "m", "LlamaForCausalLM", shards="40KB")
    index = json.loads((path / "model.safetensors.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[-1]
    moved = tmp_path / "moved"
    (path / shard).rename(moved)
    assert f"shard {shard} named in model.safetensors.index.json is missing" in _refused(
        capsys, "--hf", str(path)
    )
    moved.rename(path / shard)
    name = next(n for n, s in index["weight_map"].items() if s != shard)
    index["weight_map"][name] = shard
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert f"puts {name} in shard {shard}, which does not hold it" in _refused(
        capsys, "--hf", str(path)
    )


def test_llama3_scaling_with_factors_executorch_does_not_implement_is_refused(tmp_path):
    path = write_hf_model(tmp_path / "m", "LlamaForCausalLM")
    config = json.loads((path / "config.json").read_text())
    config["rope_parameters"]["low_freq_factor"] = 2.0
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="low_freq_factor 2.0 is not supported"):
        from_hf(path)


def test_metadata_option(capsys, qwen3):
    assert parse_metadata('{"get_bos_id": 5, "get_eos_ids": [7, 8]}') == {
        "get_bos_id": 5,
        "get_eos_ids": [7, 8],
    }
    for bad, why in [
        ("{nope", "not valid JSON"),
        ("[1]", "expected a JSON object"),
        ('{"_x": 1}', "cannot be a method name"),
        ('{"a": {"b": 1}}', "a value must be"),
        ('{"a": [1, "x"]}', "a value must be"),
    ]:
        assert why in _refused(capsys, "--hf", str(qwen3), "--metadata", bad)


def test_runner_ids():
    assert runner_ids(1, [2, 3, 2]) == {"get_bos_id": 1, "get_eos_ids": [2, 3]}
    assert runner_ids(None, 7) == {"get_eos_ids": [7]}
    assert runner_ids(None, None) == {}


def test_calibration_flags_need_a_tokenizer_and_a_calibrating_pipeline(capsys, qwen3, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello")
    assert "needs the model's tokenizer" in _refused(capsys, "--calibration-text", str(text))
    assert "need a pipeline with pt2e-calibrate" in _refused(
        capsys, "--hf", str(qwen3), "--calibration-text", str(text)
    )
    assert "only apply with --calibration-text" in _refused(capsys, "--calibration-limit", "2")


def test_list_models_names_every_architecture(capsys):
    code, out, _ = run(capsys, "list", "models")
    assert code == 0 and all(name in out for name in ARCHITECTURES)
