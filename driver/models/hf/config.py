"""A Hugging Face model directory's ``config.json``: which architectures pteflow builds,
and the ExecuTorch Llama params (``ModelArgs`` keys) each one's config maps to.

Every supported architecture is one ExecuTorch 1.5.1's Llama transformer implements
(``executorch.examples.models.llama``) and ships a weight converter for
(``examples/models/{qwen2_5,qwen3,smollm2,phi_4_mini}/convert_weights.py``). What the
transformer cannot express (a bias on ``o_proj``, an MLP bias, a RoPE scaling other than
Llama 3's or LongRoPE, Llama 3 scaling with factors ExecuTorch hard-codes differently)
is refused here with one line, rather than compiled into a model that computes
something else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir.errors import ModelError


@attrs.frozen
class Architecture:
    """How one ``architectures[0]`` of config.json maps onto ExecuTorch's Llama."""

    name: str
    family: str  # examples/models/<family>/convert_weights.py holds the HF -> Meta names
    table: str  # the name of that file's Meta -> HF table
    example: str  # a checkpoint of this architecture, for messages
    hf_rope: bool  # rotate-half RoPE on HF's q/k layout (else Meta's interleaved layout)
    qkv_bias: bool = False
    qk_norm: bool = False
    fused: bool = False  # qkv_proj and gate_up_proj are single matrices (Phi-3)


ARCHITECTURES: Mapping[str, Architecture] = {
    a.name: a
    for a in (
        # Meta's interleaved RoPE: the only one ExecuTorch scales the Llama 3 way
        Architecture(
            "LlamaForCausalLM",
            "qwen2_5",
            "_QWEN_2_5_FROM_META",
            "Llama 3.x, SmolLM2",
            hf_rope=False,
        ),
        Architecture(
            "Qwen2ForCausalLM",
            "qwen2_5",
            "_QWEN_2_5_FROM_META",
            "Qwen2.5",
            hf_rope=True,
            qkv_bias=True,
        ),
        Architecture(
            "Qwen3ForCausalLM", "qwen3", "_QWEN_3_FROM_META", "Qwen3", hf_rope=True, qk_norm=True
        ),
        Architecture(
            "Phi3ForCausalLM",
            "phi_4_mini",
            "_HF_PHI_4_FROM_META",
            "Phi-4-mini, Phi-3",
            hf_rope=True,
            fused=True,
        ),
    )
}
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def supported() -> str:
    return ", ".join(f"{a.name} ({a.example})" for a in ARCHITECTURES.values())


def model_dir(path: str | Path) -> Path:
    """The directory ``--hf`` names, checked without any network access.

    Raises:
        ModelError: no such directory (a hub name says how to download it first), a
            file instead of a directory, or no config.json in it.
    """
    text = str(path)
    p = Path(path).expanduser()
    if not p.exists():
        if _HUB_NAME.match(text):
            raise ModelError(
                f"--hf {text}: no such directory; pteflow reads only local files and never "
                f"downloads: run `huggingface-cli download {text} --local-dir DIR` first, "
                "then give --hf DIR"
            )
        raise ModelError(f"--hf {text}: no such directory")
    if not p.is_dir():
        raise ModelError(
            f"--hf {text}: is a file; give the model's directory (the one holding "
            "config.json and the *.safetensors files)"
        )
    if not (p / "config.json").is_file():
        raise ModelError(
            f"--hf {text}: no config.json in it; give a Hugging Face model directory "
            "(config.json, *.safetensors, tokenizer.json)"
        )
    return p


def read_json(path: Path, what: str) -> dict[str, Any]:
    from ..llama.params import read_json_object

    return read_json_object(path, what)


def architecture(config: Mapping[str, Any], where: str) -> Architecture:
    """The supported architecture config.json names.

    Raises:
        ModelError: none named, or one pteflow does not build (the supported ones listed).
    """
    names = config.get("architectures")
    if not isinstance(names, list) or not names:
        raise ModelError(f"{where}: no 'architectures' entry; pteflow builds {supported()}")
    arch = ARCHITECTURES.get(names[0])
    if arch is None:
        raise ModelError(
            f"{where}: architecture {names[0]} is not supported; pteflow builds {supported()}"
        )
    return arch


def _get(config: Mapping[str, Any], key: str, where: str) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ModelError(f"{where}: {key} must be a positive integer, got {value!r}")
    return value


def rope_parameters(config: Mapping[str, Any]) -> dict[str, Any]:
    """RoPE settings in one dict whichever transformers wrote the file: 5.x keeps them in
    ``rope_parameters``, 4.x in top-level ``rope_theta`` and ``rope_scaling``."""
    rope = dict(config.get("rope_scaling") or {})
    rope.update(config.get("rope_parameters") or {})
    for key in ("rope_theta", "partial_rotary_factor"):
        if key not in rope and key in config:
            rope[key] = config[key]
    if "type" in rope and "rope_type" not in rope:
        rope["rope_type"] = rope["type"]
    return rope


def params_from_config(config: Mapping[str, Any], arch: Architecture, where: str) -> dict:
    """ExecuTorch ``ModelArgs`` keys for ``config`` (sequence lengths are set by the caller).

    Raises:
        ModelError: a key missing or ill-typed, or a feature ExecuTorch's Llama lacks.
    """
    act = config.get("hidden_act", "silu")
    if act != "silu":
        raise ModelError(f"{where}: hidden_act {act!r} is not supported (only 'silu')")
    if config.get("mlp_bias"):
        raise ModelError(f"{where}: mlp_bias is not supported by ExecuTorch's Llama")
    if config.get("attention_bias"):
        raise ModelError(
            f"{where}: attention_bias (a bias on o_proj too) is not supported by ExecuTorch's Llama"
        )
    if config.get("use_sliding_window"):
        raise ModelError(f"{where}: use_sliding_window is not supported")
    dim = _get(config, "hidden_size", where)
    heads = _get(config, "num_attention_heads", where)
    params: dict[str, Any] = {
        "dim": dim,
        "n_layers": _get(config, "num_hidden_layers", where),
        "n_heads": heads,
        "n_kv_heads": config.get("num_key_value_heads") or heads,
        "vocab_size": _get(config, "vocab_size", where),
        "hidden_dim": _get(config, "intermediate_size", where),
        "norm_eps": float(config.get("rms_norm_eps", 1e-6)),
        "model_architecture": arch.name,
    }
    if config.get("head_dim"):
        params["head_dim"] = _get(config, "head_dim", where)
    if arch.qkv_bias:
        params["attention_qkv_bias"] = True
    if arch.qk_norm:
        params["use_qk_norm"] = True
        params["qk_norm_before_rope"] = True
    params.update(_rope(config, arch, where))
    return params


def _rope(config: Mapping[str, Any], arch: Architecture, where: str) -> dict[str, Any]:
    rope = rope_parameters(config)
    out: dict[str, Any] = {"rope_theta": float(rope.get("rope_theta", 10000.0))}
    kind = rope.get("rope_type") or "default"
    partial = float(rope.get("partial_rotary_factor", 1.0))
    if arch.hf_rope:
        out["use_hf_rope"] = True
        out["partial_rotary_factor"] = partial
    elif partial != 1.0:
        raise ModelError(
            f"{where}: partial_rotary_factor {partial} is not supported for {arch.name}"
        )
    if kind == "default":
        return out
    if kind == "llama3" and not arch.hf_rope:
        # ExecuTorch's apply_scaling hard-codes low_freq_factor 1 and an 8192 context
        fixed = {"low_freq_factor": 1.0, "original_max_position_embeddings": 8192}
        for key, want in fixed.items():
            if float(rope.get(key, want)) != want:
                raise ModelError(
                    f"{where}: llama3 RoPE scaling with {key} {rope[key]} is not supported "
                    f"(ExecuTorch's Llama fixes it at {want:g})"
                )
        out.update(
            use_scaled_rope=True,
            rope_scale_factor=rope.get("factor", 8),
            high_freq_factor=rope.get("high_freq_factor", 4),
        )
        return out
    if kind == "longrope" and arch.hf_rope:
        original = rope.get("original_max_position_embeddings") or config.get(
            "original_max_position_embeddings"
        )
        out.update(
            rope_scaling_short_factor=list(rope["short_factor"]),
            rope_scaling_long_factor=list(rope["long_factor"]),
            original_max_position_embeddings=original,
            max_position_embeddings=config.get("max_position_embeddings"),
        )
        if rope.get("attention_factor") is not None:
            out["rope_scaling_attention_factor"] = float(rope["attention_factor"])
        return out
    raise ModelError(
        f"{where}: RoPE scaling {kind!r} is not supported for {arch.name} "
        f"(ExecuTorch's Llama implements {'longrope' if arch.hf_rope else 'llama3'})"
    )
