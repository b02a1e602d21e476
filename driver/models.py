"""Model sources: ``MODULE:FUNCTION`` (any model) and the built-in ones."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir import Program
from pteflow.ir.errors import ModelError


@attrs.frozen
class LoadedModel:
    """A program to compile and what is needed to check the result against eager.

    ``reference`` is an untouched copy of the eager modules (passes may change
    the program's modules in place). ``steps`` is the sequence of input tuples
    the verification feeds, in order, to both eager and the ``.pte`` (one call
    for a plain model; prefill and decode steps for an LLM with a KV cache).
    """

    program: Program
    reference: Mapping[str, Any]
    steps: Sequence[tuple[str, tuple[Any, ...]]]
    description: str
    tolerance: float = 1e-4


def _load_callable(spec: str) -> Callable[[], Any]:
    module_name, colon, func_name = spec.rpartition(":")
    if not colon or not module_name or not func_name:
        raise ModelError(
            f"--model {spec!r}: expected MODULE:FUNCTION "
            "(e.g. mypkg.models:build or path/to/file.py:build)"
        )
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ModelError(f"--model {spec!r}: no such file {path}")
            mod_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert mod_spec and mod_spec.loader
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[path.stem] = module
            mod_spec.loader.exec_module(module)
        else:
            if "" not in sys.path:
                sys.path.insert(0, "")
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ModelError(f"--model {spec!r}: cannot import {module_name!r} ({e})") from e
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ModelError(f"--model {spec!r}: {module_name} has no function {func_name!r}")
    return func


def from_callable(spec: str) -> LoadedModel:
    """Call ``MODULE:FUNCTION``; it returns ``(module, example_inputs)``, optionally with
    dynamic shapes as a third item, or a ``pteflow.ir.Program``."""
    import torch

    made = _load_callable(spec)()
    if isinstance(made, Program):
        program = made
    else:
        if (
            not isinstance(made, tuple)
            or len(made) not in (2, 3)
            or not isinstance(made[0], torch.nn.Module)
        ):
            raise ModelError(
                f"--model {spec!r} returned {type(made).__name__}; expected "
                "(nn.Module, example_inputs[, dynamic_shapes]) or a Program"
            )
        module, inputs = made[0], made[1]
        if not isinstance(inputs, tuple):
            raise ModelError(
                f"--model {spec!r}: example inputs must be a tuple, got {type(inputs).__name__}"
            )
        program = Program.eager(
            module.eval(), inputs, dynamic_shapes=made[2] if len(made) == 3 else None
        )
    reference = {m: copy.deepcopy(mod) for m, mod in program.modules().items()}
    steps = [(m, tuple(inp)) for m, inp in program.example_inputs.items()]
    return LoadedModel(program, reference, steps, spec)
