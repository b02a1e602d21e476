"""A Meta-format Llama checkpoint (``consolidated.pth``): reading it, and checking its
tensors against the model the params describe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pteflow.ir.errors import ModelError

from .params import first_line

if TYPE_CHECKING:
    import torch

# Checkpoint entries that carry no weights of this model (Llama 2's rope table).
IGNORED_TENSORS = ("rope.freqs",)


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
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
            f"checkpoint {path}: cannot load it as a torch checkpoint ({first_line(e)})"
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


def dtype_name(state: Mapping[str, torch.Tensor]) -> str:
    floats = {str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_floating_point()}
    return ",".join(sorted(floats)) or "none"


def cache_state_names(model: torch.nn.Module) -> set[str]:
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
    skip = cache_state_names(model)
    return {n: tuple(t.shape) for n, t in model.state_dict().items() if n not in skip}


def check_state(
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
    ignored = {*IGNORED_TENSORS, *cache_state_names(model)}
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
    return words.split(". ")[0].split(" Check the documentation")[0].strip() or first_line(e)
