"""Helpers shared by the EAGER quantization passes."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pteflow.ir import Program

if TYPE_CHECKING:
    import torch


def copy_modules(program: Program) -> dict[str, torch.nn.Module]:
    """The program's modules, copied as modules but sharing every tensor.

    Quantizing a copy leaves the input program's model intact (a pass returns
    a new program), at the cost of module objects only: the quantized copy
    gets new weight tensors, the fp32 ones stay with the input program until
    it is dropped. Modules that appear under several methods stay shared.
    """
    memo: dict[int, object] = {}
    for module in program.modules().values():
        for t in _tensors(module):
            memo[id(t)] = t
    return {method: copy.deepcopy(module, memo) for method, module in program.modules().items()}


def _tensors(module: torch.nn.Module) -> Iterator[torch.Tensor]:
    import torch

    yield from module.parameters()
    yield from module.buffers()
    for sub in module.modules():  # tensors kept as plain attributes (not registered)
        yield from (v for v in vars(sub).values() if isinstance(v, torch.Tensor))


def named_of_type(modules: dict[str, torch.nn.Module], cls: type) -> Iterator[tuple[str, str, Any]]:
    """(method, qualified name, module) of every submodule that is a ``cls``."""
    seen: set[int] = set()
    for method, module in modules.items():
        for name, sub in module.named_modules():
            if isinstance(sub, cls) and id(sub) not in seen:
                seen.add(id(sub))
                yield method, name, sub


def where(method: str, name: str, n_methods: int) -> str:
    """How an error names a layer: ``'layers.0.fc'`` (and the method when there are several)."""
    return f"{name!r}" + (f" of method {method!r}" if n_methods > 1 else "")
