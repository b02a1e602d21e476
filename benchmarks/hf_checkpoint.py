"""Hugging Face sizes for bench_export.py: one random checkpoint, read by both flows.

``write_hf_checkpoint(out, size)`` writes a random-weight Hugging Face directory
(``pteflow.hf_testing.write_hf_model``: config.json, model.safetensors, tokenizer) and
the same weights in export_llama's format: ``params.json`` + a Meta-named
``consolidated.pth``, converted with pteflow's own HF -> Meta conversion
(``driver/models/hf``: the names come from ExecuTorch's convert_weights tables), so
both flows compile the very same numbers. pteflow reads the directory (``--hf DIR``).

Sizes: ``tiny-hf`` (the tests' tiny LlamaForCausalLM, for checking the script) and
``smollm2-135m-hf`` (SmolLM2-135M's shapes: dim 576, 30 layers, 9 heads, 3 KV heads,
FFN 1536, vocab 49152, tied embeddings, RoPE theta 1e5; ~135M parameters, ~0.55 GB
of fp32 safetensors, a few GB of peak memory per export).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ARCHITECTURE = "LlamaForCausalLM"

#: size -> (overrides of hf_testing's tiny config, max_seq_len to export with)
HF_SIZES: dict[str, tuple[Mapping[str, Any], int]] = {
    "tiny-hf": ({}, 128),
    "smollm2-135m-hf": (
        {
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "vocab_size": 49152,
            "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-5,
            "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
        },
        256,
    ),
}


def write_hf_checkpoint(
    out_dir: str | Path, size: str, *, seed: int = 0
) -> tuple[Path, Path, Path, int]:
    """Write the HF directory and its export_llama twin under ``out_dir``.

    Returns (hf_dir, params_path, checkpoint_path, vocab_size).
    """
    import torch

    from pteflow.driver.models.hf.config import architecture, params_from_config, read_json
    from pteflow.driver.models.hf.weights import read_safetensors, to_meta
    from pteflow.hf_testing import write_hf_model

    out = Path(out_dir)
    hf_dir = write_hf_model(out / "hf", ARCHITECTURE, seed=seed, **HF_SIZES[size][0])
    where = f"benchmark {size}"
    config = read_json(hf_dir / "config.json", f"{where}: config.json")
    arch = architecture(config, where)
    params = params_from_config(config, arch, where)  # ModelArgs keys, no lengths
    tied = bool(config.get("tie_word_embeddings", False))
    weights = to_meta(read_safetensors(hf_dir, where), arch, {**params, "_tied": tied}, where)
    meta = out / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    params_path, ckpt_path = meta / "params.json", meta / "consolidated.pth"
    params_path.write_text(json.dumps(params, indent=2) + "\n")
    # own copies, not views of the memory-mapped file; a tied output stays one tensor
    copies: dict[int, torch.Tensor] = {}
    state = {k: copies.setdefault(id(v), v.contiguous().clone()) for k, v in weights.items()}
    torch.save(state, ckpt_path)
    return hf_dir, params_path, ckpt_path, int(params["vocab_size"])


def pteflow_hf_command(
    pipeline: str,
    hf_dir: str | Path,
    pte: str | Path,
    *,
    max_seq_len: int,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """``driver run --hf DIR``, the counterpart of reference.pteflow_command."""
    from benchmarks.reference import driver_run

    return driver_run(pipeline, ["--hf", str(hf_dir)], pte, max_seq_len=max_seq_len,
                      extra_args=extra_args, python=python)  # fmt: skip
