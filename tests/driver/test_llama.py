"""The Llama model sources: the tiny default, params.json + checkpoint, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pteflow.driver.models import TINY_PARAMS, from_params, tiny_llama
from pteflow.ir import Level, facts
from pteflow.ir.errors import ModelError
from pteflow.testing import write_random_checkpoint

# What export_llama's _load_llama_model_metadata writes for the tiny config with -kv
# and its defaults (dynamic shape on, no --use_sdpa_with_kv_cache).
EXPORT_LLAMA_METADATA = {
    "get_max_seq_len": 128,
    "get_max_context_len": 128,
    "get_n_layers": 2,
    "get_vocab_size": 512,
    "use_kv_cache": True,
    "use_sdpa_with_kv_cache": False,
    "enable_dynamic_shape": True,
}


def _decode(model) -> list[torch.Tensor]:
    module = model.reference["forward"]
    with torch.no_grad():
        return [module(*inputs) for _method, inputs in model.steps]


def _equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny config as params.json + consolidated.pth (weights of tiny_llama(seed=0))."""
    return write_random_checkpoint(tmp_path_factory.mktemp("tiny"))


def _params(tmp_path: Path, **changes) -> Path:
    params = {**TINY_PARAMS, **changes}
    path = tmp_path / "params.json"
    path.write_text(json.dumps({k: v for k, v in params.items() if v is not ...}))
    return path


# =========================================================================== the tiny Llama


def test_tiny_llama_program():
    model = tiny_llama()
    program = model.program
    assert program.level == Level.EAGER and program.method_names == ["forward"]
    assert program.facts == {facts.KV_CACHE}
    module = program.modules()["forward"]
    assert type(module).__name__ == "Transformer" and not module.training
    args = module.params
    assert (args.dim, args.n_layers, args.n_heads, args.n_kv_heads, args.vocab_size) == (
        64,
        2,
        4,
        2,
        512,
    )
    assert args.max_seq_len == args.max_context_len == 128
    assert args.use_kv_cache and args.enable_dynamic_shape
    assert {p.dtype for p in module.parameters()} == {torch.float32}


def test_tiny_llama_example_inputs_and_dynamic_shapes_match_export_llama():
    # Llama2Model.get_example_inputs_kvcache_sdpa + LLMEdgeManager with enable_dynamic_shape
    program = tiny_llama().program
    tokens, kwargs = program.example_inputs["forward"]
    assert tokens.dtype == torch.long and tokens.tolist() == [[2, 3, 4]]
    assert list(kwargs) == ["input_pos"] and kwargs["input_pos"].tolist() == [0]
    token_dims, pos_dims = program.dynamic_shapes["forward"]
    dim = token_dims[1]  # torch's, made when read (an ir.dims.Dim in the program)
    assert dim.__name__ == "token_dim" and (dim.min, dim.max) == (0, 127)
    assert pos_dims == {"input_pos": {0: 1}}


def test_static_shape_variant_uses_a_one_token_example():
    program = tiny_llama(enable_dynamic_shape=False).program
    tokens, kwargs = program.example_inputs["forward"]
    assert tokens.tolist() == [[1]] and kwargs["input_pos"].tolist() == [0]
    assert "forward" not in program.dynamic_shapes
    assert program.metadata["enable_dynamic_shape"] is False


def test_tiny_llama_metadata():
    from pteflow.passes.convert.to_edge import constant_methods

    program = tiny_llama().program
    # the constant methods the .pte gets are exactly export_llama's
    assert constant_methods(program) == EXPORT_LLAMA_METADATA
    # pteflow's own entries start with "_" so they stay out of the .pte
    assert program.metadata["_n_layers"] == 2
    assert program.metadata["_max_seq_len"] == 128
    assert program.metadata["_vocab_size"] == 512


@pytest.mark.slow
def test_metadata_equals_what_export_llama_computes():
    from executorch.examples.models.llama.export_llama_lib import _load_llama_model_metadata

    upstream = _load_llama_model_metadata(True, False, True, 128, 128, 2, 512)
    assert upstream == EXPORT_LLAMA_METADATA


def test_steps_feed_one_token_per_call_with_increasing_positions():
    model = tiny_llama()
    assert len(model.steps) == 10
    for pos, (method, (tokens, kwargs)) in enumerate(model.steps):
        assert method == "forward" and tuple(tokens.shape) == (1, 1)
        assert kwargs["input_pos"].tolist() == [pos]
        assert 0 <= tokens.item() < 512
    logits = _decode(model)
    assert all(tuple(x.shape) == (1, 512) and torch.isfinite(x).all() for x in logits)


def test_reference_is_an_untouched_copy():
    model = tiny_llama()
    module, reference = model.program.modules()["forward"], model.reference["forward"]
    assert reference is not module
    assert not any(
        a.data_ptr() == b.data_ptr()
        for a, b in zip(module.parameters(), reference.parameters(), strict=True)
    )
    with torch.no_grad():  # running the program's module leaves the reference alone
        module(*model.program.example_inputs["forward"])
    assert all(not b.any() for n, b in reference.named_buffers() if n.endswith("_cache"))


def test_seed_decides_the_weights():
    assert _equal(_decode(tiny_llama(seed=0)), _decode(tiny_llama(seed=0)))
    assert not _equal(_decode(tiny_llama(seed=0)), _decode(tiny_llama(seed=1)))


def test_overrides_change_the_config():
    model = tiny_llama(dim=32, n_layers=1, max_seq_len=64)
    args = model.program.modules()["forward"].params
    assert (args.dim, args.n_layers, args.max_seq_len) == (32, 1, 64)
    assert model.program.metadata["get_max_seq_len"] == 64


def test_without_kv_cache():
    model = tiny_llama(use_kv_cache=False)
    assert facts.KV_CACHE not in model.program.facts
    (tokens,) = model.program.example_inputs["forward"]
    assert tuple(tokens.shape) == (1, 127)  # export_llama: max_seq_len - 1 with dynamic shape
    assert len(model.steps) == 1 and tuple(model.steps[0][1][0].shape) == (1, 10)
    assert model.program.metadata["use_kv_cache"] is False


# =========================================================================== params + checkpoint


def test_checkpoint_round_trip_equals_tiny_llama(files):
    params, checkpoint = files
    assert "max_seq_len" not in json.loads(params.read_text())  # export_llama rejects it
    model = from_params(params, checkpoint)
    assert model.program.facts == {facts.KV_CACHE}
    assert constant_methods_of(model) == EXPORT_LLAMA_METADATA
    assert _equal(_decode(model), _decode(tiny_llama(seed=0)))


def constant_methods_of(model):
    from pteflow.passes.convert.to_edge import constant_methods

    return constant_methods(model.program)


def test_params_without_checkpoint_get_seeded_random_weights(files):
    params, _ = files
    assert _equal(_decode(from_params(params, seed=3)), _decode(tiny_llama(seed=3)))


def test_max_seq_len_option_wins_and_sets_the_cache(files):
    params, checkpoint = files
    model = from_params(params, checkpoint, max_seq_len=64)
    args = model.program.modules()["forward"].params
    assert args.max_seq_len == args.max_context_len == 64
    assert model.program.dynamic_shapes["forward"][0][1].max == 63
    assert model.program.metadata["get_max_seq_len"] == 64


def test_max_seq_len_from_params_json(tmp_path, files):
    _, checkpoint = files
    model = from_params(_params(tmp_path, max_seq_len=32, max_context_len=64), checkpoint)
    args = model.program.modules()["forward"].params
    assert (args.max_seq_len, args.max_context_len) == (32, 64)


def test_bf16_checkpoint_loads_as_fp32(tmp_path):
    params, checkpoint = write_random_checkpoint(tmp_path, dtype="bfloat16")
    model = from_params(params, checkpoint)
    module = model.program.modules()["forward"]
    assert {p.dtype for p in module.parameters()} == {torch.float32}
    assert model.program.metadata["_checkpoint_dtype"] == "bfloat16"


def test_vocab_size_minus_one_comes_from_the_checkpoint(tmp_path, files):
    _, checkpoint = files
    model = from_params(_params(tmp_path, vocab_size=-1), checkpoint)
    assert model.program.metadata["get_vocab_size"] == 512


def test_weights_nested_under_model_key(tmp_path, files):
    params, checkpoint = files
    nested = tmp_path / "nested.pth"
    torch.save({"model": torch.load(checkpoint, weights_only=True)}, nested)
    assert _equal(_decode(from_params(params, nested)), _decode(tiny_llama(seed=0)))


def test_llama2_rope_freqs_entry_is_ignored(tmp_path, files):
    params, checkpoint = files
    state = torch.load(checkpoint, weights_only=True)
    state["rope.freqs"] = torch.zeros(8)
    torch.save(state, tmp_path / "c.pth")
    from_params(params, tmp_path / "c.pth")


# =========================================================================== pre-quantized


def _quantized_checkpoint(tmp_path: Path, name: str, quantize) -> tuple[Path, Path]:
    params, _ = write_random_checkpoint(tmp_path)
    module = tiny_llama(seed=0).reference["forward"]
    path = tmp_path / name
    torch.save(quantize(module), path)
    return params, path


def test_int8_checkpoint_recognised_by_content(tmp_path):
    from executorch.examples.models.llama.source_transformation.quantize import (
        WeightOnlyInt8Linear,
        WeightOnlyInt8QuantHandler,
    )

    params, path = _quantized_checkpoint(
        tmp_path,
        "consolidated.pth",
        lambda m: WeightOnlyInt8QuantHandler(m).create_quantized_state_dict(),
    )
    model = from_params(params, path)
    assert model.program.metadata["_prequantized"] == "int8"
    module = model.program.modules()["forward"]
    assert sum(isinstance(m, WeightOnlyInt8Linear) for m in module.modules()) == 15
    assert not any(type(m) is torch.nn.Linear for m in module.modules())
    diff = max(
        (a - b).abs().max().item()
        for a, b in zip(_decode(model), _decode(tiny_llama(seed=0)), strict=True)
    )
    assert diff < 0.2  # int8 per-channel weights: measured 0.058 (logits up to ~3.8)


def test_8da4w_checkpoint_recognised_by_content_with_its_group_size(tmp_path):
    from torchao.quantization.linear_quant_modules import (
        Int8DynActInt4WeightLinear,
        Int8DynActInt4WeightQuantizer,
    )

    params, path = _quantized_checkpoint(
        tmp_path,
        "consolidated.pth",
        lambda m: Int8DynActInt4WeightQuantizer(groupsize=32)._create_quantized_state_dict(m),
    )
    model = from_params(params, path)
    assert model.program.metadata["_prequantized"] == "8da4w"
    linears = [
        m
        for m in model.program.modules()["forward"].modules()
        if isinstance(m, Int8DynActInt4WeightLinear)
    ]
    assert len(linears) == 15 and {m.groupsize for m in linears} == {32}  # not Llama2Model's 256
    diff = max(
        (a - b).abs().max().item()
        for a, b in zip(_decode(model), _decode(tiny_llama(seed=0)), strict=True)
    )
    assert diff < 1.0  # 4-bit weights and 8-bit activations


def test_file_name_does_not_decide_quantization(tmp_path, files):
    # ExecuTorch's Llama2Model would take this float checkpoint for a quantized one
    params, checkpoint = files
    trap = tmp_path / "llama_int8_8da4w.pth"
    trap.write_bytes(checkpoint.read_bytes())
    model = from_params(params, trap)
    assert model.program.metadata["_prequantized"] is None
    assert _equal(_decode(model), _decode(tiny_llama(seed=0)))


# =========================================================================== bad input


def test_missing_params_file(tmp_path):
    with pytest.raises(ModelError, match=r"^params .*nope\.json: no such file$"):
        from_params(tmp_path / "nope.json")


def test_params_path_is_a_directory(tmp_path):
    with pytest.raises(ModelError, match=r"is a directory; give the params.json file"):
        from_params(tmp_path)


def test_unreadable_params_file(tmp_path):
    path = tmp_path / "params.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ModelError, match=r"params .*params\.json: cannot read it \("):
        from_params(path)


def test_malformed_json(tmp_path):
    path = tmp_path / "params.json"
    path.write_text('{"dim": 64,\n "n_layers": }')
    with pytest.raises(ModelError, match=r"not valid JSON: Expecting value at line 2 column 14"):
        from_params(path)


def test_json_that_is_not_an_object(tmp_path):
    path = tmp_path / "params.json"
    path.write_text("[64, 2]")
    with pytest.raises(
        ModelError,
        match=r"expected a JSON object of model parameters, got a "
        r"JSON list",
    ):
        from_params(path)


def test_unknown_params_key_is_named_with_the_known_ones(tmp_path):
    with pytest.raises(
        ModelError,
        match=r"unknown key 'n_head'; did you mean n_heads.*\? "
        r"known keys: dim, n_layers, n_heads, n_kv_heads, "
        r"vocab_size",
    ):
        from_params(_params(tmp_path, n_head=4))


def test_missing_params_key(tmp_path):
    with pytest.raises(
        ModelError,
        match=r"missing key n_layers; a Llama params file needs dim, "
        r"n_layers, n_heads, vocab_size",
    ):
        from_params(_params(tmp_path, n_layers=...))


def test_key_pteflow_sets_itself(tmp_path):
    with pytest.raises(
        ModelError,
        match=r"key 'use_kv_cache' cannot be set in params: pteflow "
        r"builds the KV cache",
    ):
        from_params(_params(tmp_path, use_kv_cache=False))


@pytest.mark.parametrize(("key", "value"), [("dim", "64"), ("n_layers", 0), ("n_heads", True)])
def test_ill_typed_params_value(tmp_path, key, value):
    with pytest.raises(ModelError, match=rf"{key} must be a positive integer, got "):
        from_params(_params(tmp_path, **{key: value}))


def test_heads_that_do_not_divide(tmp_path):
    with pytest.raises(ModelError, match=r"n_heads 4 is not a multiple of n_kv_heads 3"):
        from_params(_params(tmp_path, n_kv_heads=3))


def test_value_executorch_refuses(tmp_path):
    with pytest.raises(
        ModelError,
        match=r"ExecuTorch's ModelArgs refuses these params: "
        r"Invalid activation function: relu",
    ):
        from_params(_params(tmp_path, act_fn="relu"))


def test_vocab_size_minus_one_without_checkpoint(tmp_path):
    with pytest.raises(
        ModelError,
        match=r"vocab_size is -1 \(taken from the checkpoint\), but "
        r"no checkpoint was given",
    ):
        from_params(_params(tmp_path, vocab_size=-1))


def test_missing_checkpoint_file(tmp_path, files):
    with pytest.raises(ModelError, match=r"^checkpoint .*missing\.pth: no such file$"):
        from_params(files[0], tmp_path / "missing.pth")


def test_checkpoint_that_is_not_a_torch_file(tmp_path, files):
    bad = tmp_path / "consolidated.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(ModelError, match=r"cannot load it as a torch checkpoint"):
        from_params(files[0], bad)


class _Opaque:
    pass


def test_checkpoint_with_objects_weights_only_refuses(tmp_path, files):
    bad = tmp_path / "consolidated.pth"
    torch.save({"tok_embeddings.weight": _Opaque()}, bad)
    with pytest.raises(
        ModelError,
        match=r"not a plain tensor checkpoint \(weights-only load "
        r"refused it",
    ):
        from_params(files[0], bad)


def test_checkpoint_entry_that_is_not_a_tensor(tmp_path, files):
    bad = tmp_path / "consolidated.pth"
    torch.save({"tok_embeddings.weight": 3}, bad)
    with pytest.raises(ModelError, match=r"entry 'tok_embeddings.weight' is a int, not a tensor"):
        from_params(files[0], bad)


def test_checkpoint_shape_mismatch_names_tensor_and_both_shapes(tmp_path, files):
    _, checkpoint = files  # written for dim 64
    with pytest.raises(
        ModelError,
        match=r"tensor tok_embeddings\.weight has shape \(512, 64\), "
        r"but params .* gives \(512, 128\); the checkpoint does "
        r"not match the params",
    ):
        from_params(_params(tmp_path, dim=128), checkpoint)


def test_checkpoint_missing_tensors(tmp_path, files):
    _, checkpoint = files  # 2 layers
    with pytest.raises(
        ModelError,
        match=r"missing 9 tensor\(s\) the params call for: "
        r"layers\.2\.attention\.wq\.weight, ",
    ):
        from_params(_params(tmp_path, n_layers=3), checkpoint)


def test_checkpoint_unexpected_tensors(tmp_path, files):
    params, checkpoint = files
    state = torch.load(checkpoint, weights_only=True)
    state["lm_head.weight"] = torch.zeros(512, 64)
    torch.save(state, tmp_path / "c.pth")
    with pytest.raises(
        ModelError,
        match=r"1 tensor\(s\) the params do not call for: "
        r"lm_head\.weight; the checkpoint does not match",
    ):
        from_params(params, tmp_path / "c.pth")


def test_max_seq_len_that_does_not_fit_the_cache(files):
    with pytest.raises(
        ModelError,
        match=r"--max-seq-len 256 does not fit the KV cache "
        r"\(--max-context-len 128\); lower --max-seq-len or raise "
        r"--max-context-len",
    ):
        from_params(*files, max_seq_len=256, max_context_len=128)


@pytest.mark.parametrize("value", [0, -5, 2.5])
def test_max_seq_len_not_a_positive_integer(files, value):
    with pytest.raises(ModelError, match=r"max_seq_len must be a positive integer"):
        from_params(*files, max_seq_len=value)


def test_max_seq_len_too_small_for_a_dynamic_token_dimension(files):
    with pytest.raises(
        ModelError,
        match=r"--max-seq-len 3 is too small for a dynamic token "
        r"dimension",
    ):
        from_params(*files, max_seq_len=3)


def test_every_error_is_one_line(tmp_path, files):
    cases = [
        lambda: from_params(tmp_path / "nope.json"),
        lambda: from_params(_params(tmp_path, n_head=4)),
        lambda: from_params(_params(tmp_path, dim=128), files[1]),
        lambda: from_params(*files, max_seq_len=256, max_context_len=128),
    ]
    for case in cases:
        with pytest.raises(ModelError) as info:
            case()
        assert "\n" not in str(info.value)


def test_without_kv_cache_static_shape_verifies_on_the_example():
    model = tiny_llama(use_kv_cache=False, enable_dynamic_shape=False)
    (tokens,) = model.program.example_inputs["forward"]
    assert tuple(tokens.shape) == (1, 128) and "forward" not in model.program.dynamic_shapes
    assert model.steps == [("forward", model.program.example_inputs["forward"])]


# =========================================================================== through the CLI


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-params", r"params .*nope\.json: no such file"),
        ("malformed-json", r"not valid JSON: Expecting value at line 1"),
        ("unknown-key", r"unknown key 'n_head'; did you mean n_heads"),
        ("missing-key", r"missing key n_layers"),
        ("missing-checkpoint", r"checkpoint .*missing\.pth: no such file"),
        ("shape-mismatch", r"tensor tok_embeddings\.weight has shape \(512, 64\), but params "),
        ("seq-too-long", r"--max-seq-len 128 does not fit the KV cache \(max_context_len 64\)"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, files, capsys, case, message):
    from pteflow.driver.cli import main

    params, checkpoint = files
    argv = {
        "missing-params": lambda: ["--params", str(tmp_path / "nope.json")],
        "malformed-json": lambda: ["--params", str(_write(tmp_path, '{"dim": }'))],
        "unknown-key": lambda: ["--params", str(_params(tmp_path, n_head=4))],
        "missing-key": lambda: ["--params", str(_params(tmp_path, n_layers=...))],
        "missing-checkpoint": lambda: [
            "--params",
            str(params),
            "--checkpoint",
            str(tmp_path / "missing.pth"),
        ],
        "shape-mismatch": lambda: [
            "--params",
            str(_params(tmp_path, dim=128)),
            "--checkpoint",
            str(checkpoint),
        ],
        "seq-too-long": lambda: [
            "--params",
            str(_params(tmp_path, max_context_len=64)),
            "--max-seq-len",
            "128",
        ],
    }[case]()
    assert main(["run", "--passes", "export", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("driver: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    import re

    assert re.search(message, err), err


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.json"
    path.write_text(text)
    return path
