"""Building a Llama-family model with ExecuTorch's own Llama definition.

``tiny_llama()`` is the built-in default (seeded random weights, offline);
``from_params()`` reads the files ``export_llama`` takes (a Meta-format
``params.json``, see ``params.py``, and optionally a ``consolidated.pth``, see
``checkpoint.py`` and ``prequantized.py``); ``pteflow.testing.write_random_checkpoint()``
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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pteflow.ir import Program, facts
from pteflow.ir.errors import ModelError

from ..loaded import LoadedModel
from ..reference import LazyReference
from .checkpoint import IGNORED_TENSORS, cache_state_names, check_state, dtype_name, read_checkpoint
from .params import BUILD_OPTIONS, check_params, first_line, model_args, read_params
from .prequantized import convert_prequantized, prequantized_mode

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
VERIFY_STEPS = 10  # tokens fed one per call: a 2-token prompt, then 8 decode steps
PROMPT_TOKENS = 2


def tiny_llama(seed: int = 0, **overrides: Any) -> LoadedModel:
    """The built-in tiny Llama: dim 64, 2 layers, 4 heads, 2 KV heads, vocab 512,
    max_seq_len 128, KV cache on, fp32, seeded random weights.

    ``overrides`` are params.json keys (``dim=128``, ``n_kv_heads=4``, ...) or the
    options of ``from_params`` (``max_seq_len``, ``max_context_len``,
    ``use_kv_cache``, ``enable_dynamic_shape``).
    """
    given = dict(overrides)
    options = {k: overrides.pop(k) for k in list(overrides) if k in BUILD_OPTIONS}
    params = check_params({**TINY_PARAMS, **overrides}, "tiny_llama overrides")
    args = model_args(params, "tiny_llama", **options)
    return loaded_model(
        args,
        random_state_dict(args, seed),
        seed=seed,
        description=f"tiny-llama (seed {seed}, {_shape_text(args)})",
        checkpoint_dtype="float32",
        prequantized=None,
        rebuild=lambda: tiny_llama(seed, **given),
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
    params = check_params(read_params(params_file), where)
    state: dict[str, torch.Tensor] | None = None
    if checkpoint_path is not None:
        state = read_checkpoint(Path(checkpoint_path))
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
    build: dict[str, Any] = {
        "max_seq_len": max_seq_len,
        "max_context_len": max_context_len,
        "use_kv_cache": use_kv_cache,
        "enable_dynamic_shape": enable_dynamic_shape,
    }
    args = model_args(params, where, **build)
    if state is None:
        weights, ckpt_dtype, prequantized = random_state_dict(args, seed), "float32", None
        source = "random weights"
    else:
        weights, ckpt_dtype, prequantized = state, dtype_name(state), prequantized_mode(state)
        source = str(checkpoint_path)
    return loaded_model(
        args,
        weights,
        seed=seed,
        checkpoint_dtype=ckpt_dtype,
        prequantized=prequantized,
        params_where=where,
        checkpoint_where=f"checkpoint {checkpoint_path}" if state is not None else None,
        description=f"llama {params_file} + {source} ({_shape_text(args)})",
        rebuild=lambda: from_params(params_path, checkpoint_path, seed=seed, **build),
    )


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


def _construct(args: Any) -> torch.nn.Module:
    """The Transformer on the meta device (no weight memory until loaded), its layers'
    random initialisation skipped (``_no_init_on_meta``)."""
    import torch
    from executorch.examples.models.llama.llama_transformer import construct_transformer

    try:
        with torch.device("meta"), _no_init_on_meta():
            return construct_transformer(args)
    except Exception as e:
        raise ModelError(
            f"ExecuTorch cannot build a Llama from these params: {first_line(e)}"
        ) from None


def _no_init_on_meta() -> Any:
    """A torch function mode in which ``torch.nn.init``'s functions leave a meta tensor as
    it is. Initialising a meta tensor computes nothing, but its first call goes through
    ``torch._refs`` and imports ``torch._dynamo`` (1.6 s), which a full cache hit
    otherwise never needs."""
    import torch
    from torch.overrides import TorchFunctionMode

    class NoInitOnMeta(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            tensor = args[0] if args else kwargs.get("tensor")
            if (
                getattr(func, "__module__", None) == "torch.nn.init"
                and isinstance(tensor, torch.Tensor)
                and tensor.is_meta
            ):
                return tensor
            return func(*args, **kwargs)

    return NoInitOnMeta()


def _parameter_shapes(args: Any) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in _construct(args).named_parameters()}


def loaded_model(
    args: Any,
    weights: Mapping[str, torch.Tensor],
    *,
    seed: int,
    description: str,
    checkpoint_dtype: str,
    prequantized: str | None,
    params_where: str = "params",
    checkpoint_where: str | None = None,
    rebuild: Callable[[], LoadedModel],
) -> LoadedModel:
    """The Llama ``args`` describes with ``weights`` (ExecuTorch's names), its example
    inputs, metadata and verification steps (shared by every Llama-family source)."""
    import torch

    from pteflow.ir.dims import Dim  # torch's made when read: its bounds import sympy

    model = _construct(args)
    if prequantized:
        convert_prequantized(model, weights)
    check_state(model, weights, params_where, checkpoint_where or "weights")
    skip = {*IGNORED_TENSORS, *cache_state_names(model)}
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
                {1: Dim("token_dim", max=args.max_seq_len - 1)},
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
            ({1: Dim("token_dim", max=args.max_seq_len - 1)},)
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
    # no copy of the weights: the reference is built again (from the memory-mapped
    # checkpoint, or the same seeded weights) only when verification reads it
    reference = LazyReference(("forward",), lambda: rebuild().program.modules())
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
