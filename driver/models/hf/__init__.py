"""Hugging Face model directories (``--hf DIR``), built with ExecuTorch's own Llama.

``config`` (config.json: the supported architectures and the ``ModelArgs`` each maps
to), ``weights`` (the memory-mapped safetensors, renamed with upstream's tables).
``from_hf`` reads a directory without any network access; the model is the same
``construct_transformer`` module the Llama sources build, so every Llama pass applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pteflow.ir.errors import ModelError

from ..loaded import LoadedModel
from ..metadata import runner_ids, with_metadata
from .config import (
    ARCHITECTURES,
    Architecture,
    architecture,
    model_dir,
    params_from_config,
    read_json,
    supported,
)
from .weights import read_safetensors, to_meta

__all__ = ["ARCHITECTURES", "Architecture", "from_hf", "hf_runner_ids", "supported"]


def from_hf(
    directory: str | Path,
    *,
    max_seq_len: int | None = None,
    max_context_len: int | None = None,
    use_kv_cache: bool = True,
    enable_dynamic_shape: bool = True,
    seed: int = 0,
) -> LoadedModel:
    """The model in a local Hugging Face directory (config.json + safetensors).

    ``max_seq_len`` defaults to 128 (export_llama's default), ``max_context_len`` to
    ``max_seq_len``. The program's metadata adds ``get_bos_id`` / ``get_eos_ids`` from
    generation_config.json, else config.json.

    Raises:
        ModelError: not a local model directory (a hub name says how to download it), an
            unsupported architecture or feature, missing or mismatched shards or tensors.
    """
    from ..llama.build import loaded_model
    from ..llama.params import check_params, model_args

    path = model_dir(directory)
    where = f"--hf {directory}"
    config = read_json(path / "config.json", f"{where}: config.json")
    arch = architecture(config, f"{where}: config.json")
    params = params_from_config(config, arch, f"{where}: config.json")
    tied = bool(config.get("tie_word_embeddings", False))
    params = check_params(params, f"{where}: config.json")
    build: dict[str, Any] = {
        "max_seq_len": max_seq_len,
        "max_context_len": max_context_len,
        "use_kv_cache": use_kv_cache,
        "enable_dynamic_shape": enable_dynamic_shape,
    }
    args = model_args(params, where, **build)
    window = config.get("sliding_window")
    if isinstance(window, int) and 0 < window < args.max_context_len:
        raise ModelError(
            f"{where}: sliding_window {window} is shorter than the KV cache "
            f"({args.max_context_len}); sliding-window attention is not supported: use "
            f"--max-context-len {window} or less"
        )
    weights = to_meta(read_safetensors(path, where), arch, {**params, "_tied": tied}, where)
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in weights.values()})
    model = loaded_model(
        args,
        weights,
        seed=seed,
        checkpoint_dtype=dtypes[0] if len(dtypes) == 1 else "mixed",
        prequantized=None,
        params_where=f"{where}: config.json",
        checkpoint_where=f"{where}: safetensors",
        description=(
            f"hf {path} ({arch.name}: dim {args.dim}, {args.n_layers} layers, "
            f"{args.n_heads} heads, {args.n_kv_heads} KV heads, vocab {args.vocab_size}, "
            f"max_seq_len {args.max_seq_len})"
        ),
        # the eager reference is built again when verification reads it, not kept as a copy
        rebuild=lambda: from_hf(directory, seed=seed, **build),
    )
    return with_metadata(model, hf_runner_ids(path, config))


def hf_runner_ids(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """``get_bos_id`` / ``get_eos_ids``: generation_config.json's, else config.json's."""
    generation: dict[str, Any] = {}
    if (path / "generation_config.json").is_file():
        generation = read_json(path / "generation_config.json", "generation_config.json")

    def pick(key: str) -> Any:
        value = generation.get(key)
        return value if value is not None else config.get(key)

    return runner_ids(pick("bos_token_id"), pick("eos_token_id"))
