"""Helpers shared by the source passes (private: the registry skips ``_`` modules)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pteflow.ir import Program
from pteflow.ir.errors import ModelError

# one copy-on-transform helper for every eager pass (it also shares unregistered tensors)
from ..quantize._eager import copy_modules as copy_modules


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
