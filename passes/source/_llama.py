"""Helpers shared by the source passes (private: the registry skips ``_`` modules)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pteflow.ir import Program
from pteflow.ir.errors import ModelError

if TYPE_CHECKING:
    import torch


def copy_modules(program: Program) -> dict[str, torch.nn.Module]:
    """The program's modules, copied as modules but sharing every parameter and buffer.

    ExecuTorch's source transforms edit a model in place (they ``setattr``
    new submodules); run on this copy, they leave the input program intact
    (a pass returns a new program, and the manager's reproducer needs the
    input as it was) for the cost of module objects only. A transform must
    not write into a shared tensor; the ones wrapped here build new modules
    and new tensors. Modules shared between methods stay shared.
    """
    memo: dict[int, Any] = {}
    for module in program.modules().values():
        for t in [*module.parameters(), *module.buffers()]:
            memo[id(t)] = t
    return {m: copy.deepcopy(module, memo) for m, module in program.modules().items()}


def submodules(program: Program) -> Iterator[tuple[str, str, Any]]:
    """``(method, qualified name, module)`` for every submodule of every method."""
    for method, root in program.modules().items():
        for name, sub in root.named_modules():
            yield method, name, sub


def count(program: Program, cls: type | tuple[type, ...]) -> int:
    """How many submodules are instances of ``cls``."""
    return sum(1 for _, _, m in submodules(program) if isinstance(m, cls))


def not_a_llama(pass_name: str, what: str) -> ModelError:
    """The error for a model that lacks the modules an ExecuTorch transform rewrites."""
    return ModelError(
        f"{pass_name}: the model has no {what}; this pass rewrites models built from "
        "executorch.examples.models.llama (the built-in tiny Llama or --params)"
    )


def boolean(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: a real bool (the CLI and TOML readers convert text first)."""
    if not isinstance(value, bool):
        from ..base import option_error

        raise option_error(
            instance.info.name, attribute.name, f"must be true or false, got {value!r}"
        )
