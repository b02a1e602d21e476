"""A Llama's ``params.json``: reading it, the keys it may hold and their checks, and the
ExecuTorch ``ModelArgs`` built from it (with the sequence lengths and cache settings
pteflow owns).

The checks refuse, with one line naming the key, what ExecuTorch's ``ModelArgs``
would accept and then fail on deep inside export or silently read as something
else, and a model whose memory floor exceeds this machine's, before torch
allocates it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pteflow.ir.errors import ModelError, closest

DEFAULT_MAX_SEQ_LEN = 128  # export_llama's --max_seq_length (and --max_context_length) default
# The options of model_args (and of from_params) that are not params.json keys.
BUILD_OPTIONS = ("max_seq_len", "max_context_len", "use_kv_cache", "enable_dynamic_shape")

# params.json keys every Llama config states (the rest default as in ModelArgs).
REQUIRED_KEYS = ("dim", "n_layers", "n_heads", "vocab_size")
# The keys Meta/ExecuTorch Llama params files use, shown in messages.
LLAMA_KEYS = (
    "dim",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "vocab_size",
    "hidden_dim",
    "head_dim",
    "multiple_of",
    "ffn_dim_multiplier",
    "norm_eps",
    "max_seq_len",
    "max_context_len",
    "rope_theta",
    "rope_freq_base",
    "use_scaled_rope",
    "rope_scale_factor",
    "high_freq_factor",
    "use_hf_rope",
    "partial_rotary_factor",
    "attention_qkv_bias",
    "use_qk_norm",
    "qk_norm_before_rope",
    "bos_idx",
    "eos_idx",
)
# ModelArgs fields that pteflow sets itself (or cannot honour): never from params.json.
CONTROLLED_KEYS: Mapping[str, str] = {
    "use_kv_cache": "pteflow builds the KV cache (use_kv_cache=... of the model source)",
    "enable_dynamic_shape": "pteflow sets it (enable_dynamic_shape=... of the model source)",
    "use_sdpa_with_kv_cache_op": "use the replace-sdpa-with-custom-op pass",
    "max_batch_size": "pteflow exports batch size 1, as export_llama does",
    "generate_full_logits": "pteflow exports last-token logits, as export_llama does",
    "input_prune_map": "vocabulary pruning is not supported",
    "output_prune_map": "vocabulary pruning is not supported",
    "device": "pteflow builds on CPU",
    "quantization_args": "QAT/SpinQuant pre-quantized checkpoints are not supported",
    "lora_args": "QAT/LoRA checkpoints are not supported",
    "r": "LoRA adapters are not supported",
    "lora_alpha": "LoRA adapters are not supported",
    "target_modules": "LoRA adapters are not supported",
}
_POSITIVE_INT_KEYS = (
    "dim",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "hidden_dim",
    "head_dim",
    "multiple_of",
    "max_seq_len",
    "max_context_len",
)
_NUMBER_KEYS = (
    "norm_eps",
    "ffn_dim_multiplier",
    "rope_theta",
    "rope_freq_base",
    "partial_rotary_factor",
)


def read_params(path: Path) -> dict[str, Any]:
    return read_json_object(path, f"params {path}", "the params.json file", "model parameters")


def read_json_object(
    path: Path, what: str, give: str = "the JSON file", holding: str = ""
) -> dict[str, Any]:
    """The JSON object in ``path``; ``what`` begins every error (one line, ModelError).

    ``give`` names the file a directory stands in for; ``holding``, what the object holds.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ModelError(f"{what}: no such file") from None
    except IsADirectoryError:
        raise ModelError(f"{what}: is a directory; give {give}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{what}: cannot read it ({first_line(e)})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(
            f"{what}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    if not isinstance(data, dict):
        raise ModelError(
            f"{what}: expected a JSON object{' of ' + holding if holding else ''}, "
            f"got a JSON {type(data).__name__}"
        )
    return data


def _known_keys() -> list[str]:
    from executorch.examples.models.llama.model_args import ModelArgs

    return [f.name for f in dataclasses.fields(ModelArgs) if f.name not in CONTROLLED_KEYS]


def check_params(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Refuse unknown, missing and ill-typed keys with one line naming the key."""
    known = set(_known_keys()) | {"max_seq_len", "max_context_len"}
    for key in params:
        if key in CONTROLLED_KEYS:
            raise ModelError(
                f"{where}: key {key!r} cannot be set in params: {CONTROLLED_KEYS[key]}"
            )
        if key not in known:
            close = closest(key, sorted(known), cutoff=0.6)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ModelError(
                f"{where}: unknown key {key!r}; {hint}known keys: "
                f"{', '.join(LLAMA_KEYS)} (and the other fields of ExecuTorch's "
                "ModelArgs)"
            )
    missing = [k for k in REQUIRED_KEYS if k not in params]
    if missing:
        raise ModelError(
            f"{where}: missing key{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; a Llama params file needs "
            f"{', '.join(REQUIRED_KEYS)}"
        )
    for key in _POSITIVE_INT_KEYS:
        value = params.get(key)
        if value is None and key in (
            "n_kv_heads",
            "hidden_dim",
            "head_dim",
            "max_seq_len",
            "max_context_len",
        ):
            continue
        if key in params and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ModelError(f"{where}: {key} must be a positive integer, got {value!r}")
    vocab = params["vocab_size"]
    if not isinstance(vocab, int) or isinstance(vocab, bool) or (vocab <= 0 and vocab != -1):
        raise ModelError(
            f"{where}: vocab_size must be a positive integer (or -1 to take it "
            f"from the checkpoint), got {vocab!r}"
        )
    for key in _NUMBER_KEYS:
        value = params.get(key)
        if value is not None and (
            not isinstance(value, int | float) or isinstance(value, bool) or value <= 0
        ):
            raise ModelError(f"{where}: {key} must be a positive number, got {value!r}")
    n_heads, n_kv = params["n_heads"], params.get("n_kv_heads") or params["n_heads"]
    if n_heads % n_kv:
        raise ModelError(f"{where}: n_heads {n_heads} is not a multiple of n_kv_heads {n_kv}")
    if params.get("head_dim") is None and params["dim"] % n_heads:
        raise ModelError(
            f"{where}: dim {params['dim']} is not a multiple of n_heads "
            f"{n_heads}; fix one or set head_dim"
        )
    _check_values(params, where, _NUMBER_KEYS)
    return dict(params)


def _check_memory(args: Any, where: str, seq_name: str, ctx_name: str) -> None:
    """Refuse a model whose weights, per-layer causal masks (ctx x ctx bools) and KV
    cache alone exceed this machine's memory, before torch tries to allocate them.

    A lower bound, so that no model that could fit is refused: weights at half a byte
    (a prequantized int4 checkpoint), the cache at two bytes; loading, the reference
    copy and export need more."""
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    ctx, dim, head = args.max_context_len, args.dim, args.head_dim
    hidden = getattr(args, "hidden_dim", None) or 4 * dim
    per_layer = {
        "masks": ctx * ctx,
        "KV cache": 2 * args.n_kv_heads * head * ctx * 2,
        "weights": (2 * dim * args.n_heads * head + 2 * dim * args.n_kv_heads * head) // 2
        + 3 * dim * hidden // 2,
    }
    need = {k: v * args.n_layers for k, v in per_layer.items()}
    need["weights"] += 2 * args.vocab_size * dim // 2
    total = sum(need.values())
    if total <= have:
        return
    biggest = max(need, key=lambda k: need[k])
    if biggest == "weights":
        cause = f"dim {dim}, n_layers {args.n_layers}, vocab_size {args.vocab_size}"
    else:
        name = ctx_name if ctx_name.startswith("--") or seq_name == "max_seq_len" else seq_name
        cause = f"{name} {ctx} x n_layers {args.n_layers}"
    raise ModelError(
        f"{where}: this model needs at least {total / 2**30:.0f} GiB ({biggest}: {cause}); "
        f"this machine has {have / 2**30:.0f} GiB"
    )


def _check_values(params: Mapping[str, Any], where: str, number_keys: tuple[str, ...]) -> None:
    """Refuse non-finite numbers, non-bool values for ModelArgs' bool fields, and an
    odd head dimension (rotary embeddings rotate pairs of channels).

    Raises:
        ModelError: naming the key and the value.
    """
    from executorch.examples.models.llama.model_args import ModelArgs

    for key in number_keys:
        value = params.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            raise ModelError(f"{where}: {key} must be a finite number, got {value!r}")
    bools = {f.name for f in dataclasses.fields(ModelArgs) if isinstance(f.default, bool)}
    for key in sorted(bools & set(params)):
        if not isinstance(params[key], bool):
            raise ModelError(f"{where}: {key} must be true or false, got {params[key]!r}")
    head_dim = params.get("head_dim") or params["dim"] // params["n_heads"]
    if head_dim % 2:
        raise ModelError(
            f"{where}: the head dimension {head_dim} is odd; rotary embeddings need an "
            "even one (set head_dim, or dim / n_heads, to an even number)"
        )


def model_args(
    params: Mapping[str, Any],
    where: str,
    *,
    max_seq_len: int | None = None,
    max_context_len: int | None = None,
    use_kv_cache: bool = True,
    enable_dynamic_shape: bool = True,
) -> Any:
    """ModelArgs for ``params``, with the sequence lengths and cache settings pteflow owns."""
    from executorch.examples.models.llama.model_args import ModelArgs

    for name, value in (("max_seq_len", max_seq_len), ("max_context_len", max_context_len)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value <= 0
        ):
            raise ModelError(f"{where}: {name} must be a positive integer, got {value!r}")
    params = dict(params)
    seq = max_seq_len or params.pop("max_seq_len", None) or DEFAULT_MAX_SEQ_LEN
    ctx = max_context_len or params.pop("max_context_len", None) or seq
    params.pop("max_seq_len", None)
    params.pop("max_context_len", None)
    # name what set each length: the flag (--max-seq-len, the max_seq_len argument) or params
    seq_name = "--max-seq-len" if max_seq_len else "max_seq_len"
    ctx_name = "--max-context-len" if max_context_len else "max_context_len"
    if seq > ctx:
        raise ModelError(
            f"{where}: {seq_name} {seq} does not fit the KV cache "
            f"({ctx_name} {ctx}); lower {seq_name} or raise {ctx_name}"
        )
    if enable_dynamic_shape and seq < 4:
        raise ModelError(
            f"{where}: {seq_name} {seq} is too small for a dynamic token "
            f"dimension (export traces a 3-token example); use {seq_name} >= 4 "
            "or enable_dynamic_shape=False"
        )
    try:
        args = ModelArgs(
            max_seq_len=seq,
            max_context_len=ctx,
            max_batch_size=1,
            use_kv_cache=use_kv_cache,
            enable_dynamic_shape=enable_dynamic_shape,
            **params,
        )
    except Exception as e:  # ModelArgs.__post_init__ asserts and raises on bad values
        raise ModelError(
            f"{where}: ExecuTorch's ModelArgs refuses these params: {first_line(e)}"
        ) from None
    _check_memory(args, where, seq_name, ctx_name)
    return args


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type when the message is empty)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
