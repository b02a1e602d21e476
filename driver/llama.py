"""Llama-family model sources, built with ExecuTorch's own Llama definition.

``tiny_llama()`` is the built-in default (seeded random weights, offline);
``from_params()`` reads the files ``export_llama`` takes (a Meta-format
``params.json`` and optionally a ``consolidated.pth``); ``write_random_checkpoint()``
writes such a pair for tests and benchmarks. All three build the model with
``executorch.examples.models.llama`` (``ModelArgs`` + ``construct_transformer``),
the definition ``export_llama`` exports, so a pass that wraps an ExecuTorch
source transform sees exactly the module classes that transform expects.

What the program looks like (``export_llama -kv`` with its defaults, which
keep ``enable_dynamic_shape`` on):

* example inputs ``(tokens[1, 3], {"input_pos": tensor([0])})`` and dynamic
  shapes ``({1: Dim("token_dim", max=max_seq_len - 1)}, {"input_pos": {0: 1}})``,
  as ``Llama2Model.get_example_inputs_kvcache_sdpa`` and ``LLMEdgeManager``
  compute them; a dynamic token dimension cannot be traced from a 1-token
  example (torch.export specializes size 1), which is why export_llama uses 3;
  with ``enable_dynamic_shape=False``: ``(tokens[1, 1], {"input_pos": tensor([0])})``
  and no dynamic shapes;
* metadata: the keys ``_load_llama_model_metadata`` writes (``get_max_seq_len``,
  ``get_max_context_len``, ``get_n_layers``, ``get_vocab_size``, ``use_kv_cache``,
  ``use_sdpa_with_kv_cache``, ``enable_dynamic_shape``), which the to-edge pass
  turns into constant methods, plus pteflow's own keys, which start with ``_``
  so they stay out of the ``.pte``: ``_n_layers``, ``_max_seq_len``,
  ``_max_context_len``, ``_vocab_size``, ``_checkpoint_dtype``, ``_prequantized``.

"KV cache on" is not a pass: in ExecuTorch it is a construction argument
(``ModelArgs.use_kv_cache``) that changes the model's inputs (``input_pos``),
its example inputs, its dynamic shapes and what one call returns. A pass
cannot change those without also changing the eager reference the ``.pte`` is
verified against, so the model source builds the cache and establishes the
``kv_cache`` fact in the program it returns.

Pre-quantized checkpoints are recognised by content, never by file name
(ExecuTorch's ``Llama2Model`` switches on ``"int8"``/``"8da4w"`` in the path,
and its ``int8`` branch imports a module that does not exist in 1.5.1): a
linear whose checkpoint entry has an int8 ``weight`` and a ``scales`` tensor
is built as ``WeightOnlyInt8Linear`` (1-D scales) or torchao's
``Int8DynActInt4WeightLinear`` (2-D scales and ``zeros``; group size from the
scales' shape, where ``Llama2Model`` assumes 256).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pteflow.ir import Program, facts
from pteflow.ir.errors import ModelError

from ._llama_checks import check_memory, check_values
from .models import LoadedModel

if TYPE_CHECKING:
    import torch

# The built-in tiny Llama (the and REFERENCE.md's "tiny" config).
TINY_PARAMS: Mapping[str, Any] = {
    "dim": 64,
    "n_layers": 2,
    "n_heads": 4,
    "n_kv_heads": 2,
    "vocab_size": 512,
}
DEFAULT_MAX_SEQ_LEN = 128  # export_llama's --max_seq_length (and --max_context_length) default
VERIFY_STEPS = 10  # tokens fed one per call: a 2-token prompt, then 8 decode steps
PROMPT_TOKENS = 2

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
# Checkpoint entries that carry no weights of this model (Llama 2's rope table).
_IGNORED_TENSORS = ("rope.freqs",)


# =========================================================================== public


def tiny_llama(seed: int = 0, **overrides: Any) -> LoadedModel:
    """The built-in tiny Llama: dim 64, 2 layers, 4 heads, 2 KV heads, vocab 512,
    max_seq_len 128, KV cache on, fp32, seeded random weights.

    ``overrides`` are params.json keys (``dim=128``, ``n_kv_heads=4``, ...) or the
    options of ``from_params`` (``max_seq_len``, ``max_context_len``,
    ``use_kv_cache``, ``enable_dynamic_shape``).
    """
    options = {k: overrides.pop(k) for k in list(overrides) if k in _BUILD_OPTIONS}
    params = _check_params({**TINY_PARAMS, **overrides}, "tiny_llama overrides")
    args = _model_args(params, "tiny_llama", **options)
    return _loaded(
        args,
        random_state_dict(args, seed),
        seed=seed,
        description=f"tiny-llama (seed {seed}, {_shape_text(args)})",
        checkpoint_dtype="float32",
        prequantized=None,
    )


def from_params(
    params_path: str | Path,
    checkpoint_path: str | Path | None = None,
    *,
    max_seq_len: int | None = None,
    max_context_len: int | None = None,
    use_kv_cache: bool = True,
    enable_dynamic_shape: bool = True,
    seed: int = 0,
) -> LoadedModel:
    """A Llama from the files export_llama takes: ``params.json`` [+ ``consolidated.pth``].

    Without a checkpoint the weights are seeded random (``seed``). ``max_seq_len``
    defaults to params.json's ``max_seq_len``, else 128 (export_llama's default);
    ``max_context_len`` (the KV cache length) to params.json's, else ``max_seq_len``.

    Raises:
        ModelError: a missing or unreadable file, malformed JSON, an unknown,
            missing or ill-typed params key, a checkpoint whose tensors do not
            match the params, or a ``max_seq_len`` that does not fit the cache.
    """
    params_file = Path(params_path)
    where = f"params {params_file}"
    params = _check_params(_read_params(params_file), where)
    state: dict[str, torch.Tensor] | None = None
    if checkpoint_path is not None:
        state = _read_checkpoint(Path(checkpoint_path))
        if params["vocab_size"] == -1:  # Meta's Llama 2 files: the tokenizer decides
            emb = state.get("tok_embeddings.weight")
            if emb is None or emb.dim() != 2:
                raise ModelError(
                    f"{where}: vocab_size is -1 and the checkpoint has no "
                    "tok_embeddings.weight to take it from; set vocab_size"
                )
            params = {**params, "vocab_size": int(emb.shape[0])}
    elif params["vocab_size"] == -1:
        raise ModelError(
            f"{where}: vocab_size is -1 (taken from the checkpoint), but no "
            "checkpoint was given; set vocab_size or give the checkpoint"
        )
    args = _model_args(
        params,
        where,
        max_seq_len=max_seq_len,
        max_context_len=max_context_len,
        use_kv_cache=use_kv_cache,
        enable_dynamic_shape=enable_dynamic_shape,
    )
    if state is None:
        weights, ckpt_dtype, prequantized = random_state_dict(args, seed), "float32", None
        source = "random weights"
    else:
        weights, ckpt_dtype, prequantized = state, _dtype_name(state), _prequant_mode(state)
        source = str(checkpoint_path)
    return _loaded(
        args,
        weights,
        seed=seed,
        checkpoint_dtype=ckpt_dtype,
        prequantized=prequantized,
        params_where=where,
        checkpoint_where=f"checkpoint {checkpoint_path}" if state is not None else None,
        description=f"llama {params_file} + {source} ({_shape_text(args)})",
    )


def write_random_checkpoint(
    directory: str | Path, *, seed: int = 0, dtype: str = "float32", **config: Any
) -> tuple[Path, Path]:
    """Write ``params.json`` and ``consolidated.pth`` with seeded random weights.

    ``config`` holds params.json keys over the tiny defaults (``dim=288, n_layers=6,
    n_heads=6, vocab_size=32000`` for a stories-15M-sized model). ``max_seq_len``
    is written only when given: export_llama fails (TypeError) on a params.json
    that has it. The weights equal ``tiny_llama(seed, **config)``'s when ``dtype``
    is float32. Returns ``(params_path, checkpoint_path)``.
    """
    import torch

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    params = _check_params({**TINY_PARAMS, **config}, "write_random_checkpoint config")
    args = _model_args(params, "write_random_checkpoint")
    state = random_state_dict(args, seed)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        raise ModelError(
            f"write_random_checkpoint: dtype {dtype!r} is not a float dtype "
            "(e.g. float32, bfloat16, float16)"
        )
    state = {k: v.to(torch_dtype) for k, v in state.items()}
    params_path, ckpt_path = out / "params.json", out / "consolidated.pth"
    params_path.write_text(json.dumps(params, indent=2) + "\n")
    torch.save(state, ckpt_path)
    return params_path, ckpt_path


def random_state_dict(args: Any, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights for every parameter of the Llama ``args`` describes.

    Linear weights ~ N(0, 1/fan_in), embeddings ~ N(0, 1), 1-D weights (norms)
    ~ 1 + N(0, 0.1): norms that are not all ones catch a transform that drops
    their weight. A private generator leaves torch's global RNG alone.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in _parameter_shapes(args).items():
        if len(shape) == 1:
            value = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name == "tok_embeddings.weight":
            value = torch.randn(shape, generator=gen)
        else:
            value = torch.randn(shape, generator=gen) / math.sqrt(shape[-1])
        out[name] = value
    return out


def decode_steps(
    tokens: Sequence[int], *, prefill: int = 0, method: str = "forward"
) -> list[tuple[str, tuple[Any, ...]]]:
    """KV-cache calls that feed ``tokens`` in order, with ``input_pos`` counting up.

    The first ``prefill`` tokens go in one call (needs ``enable_dynamic_shape``),
    the rest one per call.
    """
    import torch

    steps: list[tuple[str, tuple[Any, ...]]] = []
    pos = 0
    chunks = ([list(tokens[:prefill])] if prefill else []) + [[t] for t in tokens[prefill:]]
    for chunk in chunks:
        steps.append(
            (
                method,
                (
                    torch.tensor([chunk], dtype=torch.long),
                    {"input_pos": torch.tensor([pos], dtype=torch.long)},
                ),
            )
        )
        pos += len(chunk)
    return steps


# =========================================================================== building

_BUILD_OPTIONS = ("max_seq_len", "max_context_len", "use_kv_cache", "enable_dynamic_shape")


def _model_args(
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
            f"{where}: ExecuTorch's ModelArgs refuses these params: {_first_line(e)}"
        ) from None
    check_memory(args, where, seq_name, ctx_name)
    return args


def _construct(args: Any) -> torch.nn.Module:
    """The Transformer on the meta device (no weight memory until loaded)."""
    import torch
    from executorch.examples.models.llama.llama_transformer import construct_transformer

    try:
        with torch.device("meta"):
            return construct_transformer(args)
    except Exception as e:
        raise ModelError(
            f"ExecuTorch cannot build a Llama from these params: {_first_line(e)}"
        ) from None


def _parameter_shapes(args: Any) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in _construct(args).named_parameters()}


def _loaded(
    args: Any,
    weights: Mapping[str, torch.Tensor],
    *,
    seed: int,
    description: str,
    checkpoint_dtype: str,
    prequantized: str | None,
    params_where: str = "params",
    checkpoint_where: str | None = None,
) -> LoadedModel:
    import torch

    model = _construct(args)
    if prequantized:
        _convert_prequantized(model, weights)
    _check_state(model, weights, params_where, checkpoint_where or "weights")
    skip = {*_IGNORED_TENSORS, *_cache_state_names(model)}
    state = {
        k: (v.float() if v.is_floating_point() else v) for k, v in weights.items() if k not in skip
    }
    model.load_state_dict(state, strict=False, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:  # every expected tensor was checked present: this is our bug
        raise AssertionError(f"tensors left on the meta device after loading: {leftover[:3]}")
    model.eval()

    example: tuple[Any, ...]
    if args.use_kv_cache:
        if args.enable_dynamic_shape:
            example = (
                torch.tensor([[2, 3, 4]], dtype=torch.long),
                {"input_pos": torch.tensor([0], dtype=torch.long)},
            )
            dynamic: Any = (
                {1: torch.export.Dim("token_dim", max=args.max_seq_len - 1)},
                {"input_pos": {0: 1}},
            )
        else:
            example = (
                torch.tensor([[1]], dtype=torch.long),
                {"input_pos": torch.tensor([0], dtype=torch.long)},
            )
            dynamic = None
    else:
        length = max(3, args.max_seq_len)
        length = length - 1 if args.enable_dynamic_shape else length
        tokens = torch.arange(length, dtype=torch.long).unsqueeze(0)
        if args.vocab_size > 1:
            tokens = tokens % (args.vocab_size - 1) + 1
        example = (tokens,)
        dynamic = (
            ({1: torch.export.Dim("token_dim", max=args.max_seq_len - 1)},)
            if args.enable_dynamic_shape
            else None
        )

    metadata = {
        # what export_llama's _load_llama_model_metadata writes (constant methods)
        "get_max_seq_len": args.max_seq_len,
        "get_max_context_len": args.max_context_len,
        "get_n_layers": args.n_layers,
        "get_vocab_size": args.vocab_size,
        "use_kv_cache": bool(args.use_kv_cache),
        "use_sdpa_with_kv_cache": False,  # replace-sdpa-with-custom-op sets it
        "enable_dynamic_shape": bool(args.enable_dynamic_shape),
        # pteflow's own (a leading "_" keeps them out of the .pte)
        "_n_layers": args.n_layers,
        "_max_seq_len": args.max_seq_len,
        "_max_context_len": args.max_context_len,
        "_vocab_size": args.vocab_size,
        "_checkpoint_dtype": checkpoint_dtype,
        "_prequantized": prequantized,
    }
    program = Program.eager(
        model,
        example,
        dynamic_shapes=dynamic,
        metadata=metadata,
        facts=[facts.KV_CACHE] if args.use_kv_cache else [],
    )
    reference = {"forward": copy.deepcopy(model)}
    tokens_list = _verify_tokens(args.vocab_size, seed, min(VERIFY_STEPS, args.max_context_len))
    if args.use_kv_cache:
        steps = decode_steps(tokens_list)
    elif args.enable_dynamic_shape:
        steps = [("forward", (torch.tensor([tokens_list], dtype=torch.long),))]
    else:  # a static token dimension takes exactly the example's length
        steps = [("forward", example)]
    return LoadedModel(program, reference, steps, description)


def _verify_tokens(vocab_size: int, seed: int, n: int) -> list[int]:
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, vocab_size, (n,), generator=gen).tolist()


def _shape_text(args: Any) -> str:
    return (
        f"dim {args.dim}, {args.n_layers} layers, {args.n_heads} heads, "
        f"{args.n_kv_heads} KV heads, vocab {args.vocab_size}, "
        f"max_seq_len {args.max_seq_len}" + ("" if args.use_kv_cache else ", no KV cache")
    )


# =========================================================================== params.json


def _read_params(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ModelError(f"params {path}: no such file") from None
    except IsADirectoryError:
        raise ModelError(f"params {path}: is a directory; give the params.json file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"params {path}: cannot read it ({_first_line(e)})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(
            f"params {path}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    if not isinstance(data, dict):
        raise ModelError(
            f"params {path}: expected a JSON object of model parameters, "
            f"got a JSON {type(data).__name__}"
        )
    return data


def _known_keys() -> list[str]:
    import dataclasses

    from executorch.examples.models.llama.model_args import ModelArgs

    return [f.name for f in dataclasses.fields(ModelArgs) if f.name not in CONTROLLED_KEYS]


def _check_params(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Refuse unknown, missing and ill-typed keys with one line naming the key."""
    known = set(_known_keys()) | {"max_seq_len", "max_context_len"}
    for key in params:
        if key in CONTROLLED_KEYS:
            raise ModelError(
                f"{where}: key {key!r} cannot be set in params: {CONTROLLED_KEYS[key]}"
            )
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
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
    check_values(params, where, _NUMBER_KEYS)
    return dict(params)


# =========================================================================== checkpoint


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a Meta-format checkpoint, memory-mapped where the format allows."""
    import pickle

    import torch

    if not path.exists():
        raise ModelError(f"checkpoint {path}: no such file")
    if path.is_dir():
        raise ModelError(f"checkpoint {path}: is a directory; give the consolidated.pth file")
    try:
        try:
            data = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            # a legacy (pre-zip) torch.save file cannot be memory-mapped
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = _unpickler_reason(e)
        if "Unsupported global" in why:  # a real pickle, holding more than tensors
            raise ModelError(
                f"checkpoint {path}: not a plain tensor checkpoint (weights-only load refused "
                f"it: {why})"
            ) from None
        raise ModelError(
            f"checkpoint {path}: cannot load it as a torch checkpoint ({why})"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise ModelError(
            f"checkpoint {path}: cannot load it as a torch checkpoint ({_first_line(e)})"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]  # some checkpoints nest the weights under "model"
    if not isinstance(data, dict):
        raise ModelError(
            f"checkpoint {path}: expected a dict of tensors, got {type(data).__name__}"
        )
    for key, value in data.items():
        if not isinstance(value, torch.Tensor):
            raise ModelError(
                f"checkpoint {path}: entry {key!r} is a {type(value).__name__}, not a tensor"
            )
    return data


def _dtype_name(state: Mapping[str, torch.Tensor]) -> str:
    floats = {str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_floating_point()}
    return ",".join(sorted(floats)) or "none"


def _prequant_mode(state: Mapping[str, torch.Tensor]) -> str | None:
    """``int8`` / ``8da4w`` when the checkpoint holds quantized linears, else None."""
    import torch

    modes = set()
    for name, scales in state.items():
        if not name.endswith(".scales"):
            continue
        weight = state.get(name[: -len("scales")] + "weight")
        if weight is None or weight.dtype != torch.int8:
            continue
        modes.add("8da4w" if scales.dim() == 2 else "int8")
    return "+".join(sorted(modes)) or None


def _convert_prequantized(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Swap each linear whose checkpoint entry is quantized for the matching module."""
    import torch

    for fqn, module in list(model.named_modules()):
        if not isinstance(module, torch.nn.Linear):
            continue
        weight, scales = state.get(f"{fqn}.weight"), state.get(f"{fqn}.scales")
        if weight is None or scales is None or weight.dtype != torch.int8:
            continue
        if scales.dim() == 1:
            from executorch.examples.models.llama.source_transformation.quantize import (
                WeightOnlyInt8Linear,
            )

            new: torch.nn.Module = WeightOnlyInt8Linear(
                "cpu", module.in_features, module.out_features, bias=False
            )
        elif (
            scales.dim() == 2
            and f"{fqn}.zeros" in state
            and scales.shape[1] > 0
            and module.in_features % scales.shape[1] == 0
        ):
            from torchao.quantization.linear_quant_modules import Int8DynActInt4WeightLinear

            new = Int8DynActInt4WeightLinear(
                module.in_features,
                module.out_features,
                bias=False,
                groupsize=module.in_features // scales.shape[1],
                precision=torch.float32,
                scales_precision=torch.float32,
            )
        else:
            raise ModelError(
                f"checkpoint: {fqn} has int8 weights with scales of shape "
                f"{tuple(scales.shape)}, which is neither int8 weight-only "
                "(1-D scales) nor 8da4w (2-D group scales with zeros)"
            )
        parent_name, _, child = fqn.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def _cache_state_names(model: torch.nn.Module) -> set[str]:
    """Names of the KV caches' buffers: runtime state, not weights."""
    from executorch.examples.models.llama.attention import KVCache

    return {
        f"{name}.{b}" if name else b
        for name, mod in model.named_modules()
        if isinstance(mod, KVCache)
        for b, _ in mod.named_buffers(recurse=False)
    }


def _expected_tensors(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor the checkpoint must hold (weights, not cache state)."""
    skip = _cache_state_names(model)
    return {n: tuple(t.shape) for n, t in model.state_dict().items() if n not in skip}


def _check_state(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], params_where: str, where: str
) -> None:
    expected = _expected_tensors(model)
    for name, shape in expected.items():
        got = state.get(name)
        if got is not None and tuple(got.shape) != shape:
            raise ModelError(
                f"{where}: tensor {name} has shape {tuple(got.shape)}, but "
                f"{params_where} gives {shape}; the checkpoint does not match "
                "the params"
            )
    missing = [n for n in expected if n not in state]
    if missing:
        raise ModelError(
            f"{where}: missing {len(missing)} tensor(s) the params call for: "
            f"{_listing(missing)}; the checkpoint does not match {params_where}"
        )
    # a state_dict() saved from an ExecuTorch Llama also holds its (zero) KV caches
    ignored = {*_IGNORED_TENSORS, *_cache_state_names(model)}
    unexpected = [n for n in state if n not in expected and n not in ignored]
    if unexpected:
        raise ModelError(
            f"{where}: {len(unexpected)} tensor(s) the params do not call for: "
            f"{_listing(unexpected)}; the checkpoint does not match {params_where}"
        )


def _listing(names: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(names[:n])
    return shown + (f", ... ({len(names) - n} more)" if len(names) > n else "")


def _unpickler_reason(e: BaseException) -> str:
    """The useful part of torch's weights-only refusal (it opens with a generic paragraph)."""
    text = str(e)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    words = " ".join(text.split())
    return words.split(". ")[0].split(" Check the documentation")[0].strip() or _first_line(e)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
