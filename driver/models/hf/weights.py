"""A Hugging Face directory's safetensors weights, memory-mapped, in ExecuTorch's names.

``read_safetensors`` opens ``model.safetensors`` or the shards
``model.safetensors.index.json`` names with ``safetensors.safe_open`` (the tensors are
views of the mapped files: no second copy is read into memory) and checks the index
against the shards. ``to_meta`` renames the tensors with upstream's HF -> Meta tables:
the ``_*_FROM_META`` dicts of ``executorch/examples/models/<family>/convert_weights.py``
and ExecuTorch's ``get_mapped_key``. Those modules import torchtune (not an ExecuTorch
dependency) at the top, so the tables are read from their source as literals, never
executed. What the tables leave to code is done here the way upstream does it: Phi-3's
fused ``qkv_proj`` and ``gate_up_proj`` are split (as ``phi_4_hf_to_meta``; slices are
views), a missing ``lm_head`` is the tied embedding (as ``qwen_3_tune_to_meta``), and a
Llama's q/k rows are put back in Meta's interleaved RoPE order (what torchtune's HF
checkpointer does for upstream's SmolLM2 converter; transformers' conversion script
applies the inverse).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pteflow.ir.errors import ModelError

from .config import Architecture, read_json

if TYPE_CHECKING:
    import torch

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
# tensors HF checkpoints may carry that are not weights of the model
_SKIPPED_SUFFIXES = ("rotary_emb.inv_freq",)


def read_safetensors(directory: Path, where: str) -> dict[str, torch.Tensor]:
    """Every tensor of the directory's safetensors checkpoint, memory-mapped.

    Raises:
        ModelError: no checkpoint, a shard the index names that is missing or does not
            hold the tensors the index puts in it, or a file safetensors cannot read.
    """
    try:
        from safetensors import safe_open
    except ImportError:
        raise ModelError(
            f"{where}: reading safetensors needs the 'hf' extra: pip install 'pteflow[hf]'"
        ) from None
    index_path = directory / INDEX
    if index_path.is_file():
        index = read_json(index_path, f"{where}: {INDEX}")
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelError(f"{where}: {INDEX} has no 'weight_map' of tensor -> shard")
        by_shard: dict[str, list[str]] = {}
        for name, shard in weight_map.items():
            by_shard.setdefault(str(shard), []).append(name)
    elif (directory / SINGLE).is_file():
        by_shard = {SINGLE: []}
    else:
        found = sorted(p.name for p in directory.glob("*.bin"))
        hint = (
            f" (it has {', '.join(found[:2])}: convert them to safetensors first)" if found else ""
        )
        raise ModelError(f"{where}: no {SINGLE} and no {INDEX}{hint}")
    out: dict[str, torch.Tensor] = {}
    for shard, names in sorted(by_shard.items()):
        path = directory / shard
        if not path.is_file():
            raise ModelError(
                f"{where}: shard {shard} named in {INDEX} is missing; download the whole "
                "checkpoint again"
            )
        try:
            with safe_open(str(path), framework="pt") as f:
                keys = set(f.keys())
                absent = [n for n in names if n not in keys]
                if absent:
                    raise ModelError(
                        f"{where}: {INDEX} puts {absent[0]} in shard {shard}, which does "
                        f"not hold it ({len(absent)} such tensor(s)); the index and the "
                        "shards do not match"
                    )
                for name in names or sorted(keys):
                    out[name] = f.get_tensor(name)
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"{where}: cannot read {shard}: {str(e).splitlines()[0]}") from None
    return out


@functools.cache
def upstream_table(family: str, table: str) -> dict[str, str]:
    """``examples/models/<family>/convert_weights.py``'s Meta -> HF name table ``table``,
    read as a literal from the installed ExecuTorch (the module itself needs torchtune).

    Raises:
        ModelError: the examples are not installed, or the file has no such table.
    """
    import importlib.util

    spec = importlib.util.find_spec("executorch.examples.models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("ExecuTorch's examples (executorch.examples.models) are not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / family / "convert_weights.py"
    try:
        tree = ast.parse(path.read_text())
    except OSError:
        raise ModelError(f"ExecuTorch's weight converter {path} is not installed") from None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == table
        ):
            return dict(ast.literal_eval(node.value))
    raise ModelError(f"ExecuTorch's {path} has no table {table}")


def to_meta(
    hf: Mapping[str, torch.Tensor], arch: Architecture, params: Mapping[str, Any], where: str
) -> dict[str, torch.Tensor]:
    """``hf``'s tensors under the names ExecuTorch's Llama uses.

    Raises:
        ModelError: a tensor the architecture's table does not know, or a missing lm_head
            in an untied checkpoint.
    """
    from executorch.examples.models.checkpoint import get_mapped_key

    inverse = {v: k for k, v in upstream_table(arch.family, arch.table).items()}
    out: dict[str, torch.Tensor] = {}

    def put(key: str, value: torch.Tensor) -> None:
        try:
            out[get_mapped_key(key, inverse)] = value
        except Exception:
            raise ModelError(
                f"{where}: tensor {key} is not part of a {arch.name} checkpoint; "
                "is config.json's architecture right?"
            ) from None

    for key, value in hf.items():
        if key.endswith(_SKIPPED_SUFFIXES):
            continue
        if arch.fused and key.endswith("mlp.gate_up_proj.weight"):
            half = value.shape[0] // 2
            put(key.replace("gate_up_proj", "gate_proj"), value[:half])
            put(key.replace("gate_up_proj", "up_proj"), value[half:])
        elif arch.fused and key.endswith("self_attn.qkv_proj.weight"):
            q = params["n_heads"] * _head_dim(params)
            kv = (value.shape[0] - q) // 2
            put(key.replace("qkv_proj", "q_proj"), value[:q])
            put(key.replace("qkv_proj", "k_proj"), value[q : q + kv])
            put(key.replace("qkv_proj", "v_proj"), value[q + kv :])
        else:
            put(key, value)
    if params.get("_tied"):
        out["output.weight"] = out["tok_embeddings.weight"]
    elif "output.weight" not in out:
        raise ModelError(
            f"{where}: no lm_head.weight, and config.json's tie_word_embeddings is false"
        )
    if not arch.hf_rope:
        for name in list(out):
            if name.endswith(("attention.wq.weight", "attention.wk.weight")):
                out[name] = _interleave(out[name], _head_dim(params))
    return out


def _head_dim(params: Mapping[str, Any]) -> int:
    return int(params.get("head_dim") or params["dim"] // params["n_heads"])


def _interleave(w: torch.Tensor, head_dim: int) -> torch.Tensor:
    """q/k rows from HF's rotate-half order to Meta's interleaved pairs, per head."""
    rows, cols = w.shape
    heads = rows // head_dim
    return w.view(heads, 2, head_dim // 2, cols).transpose(1, 2).reshape(rows, cols)
