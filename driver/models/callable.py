"""The ``MODULE:FUNCTION`` model source: any model the user's code builds."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pteflow.ir import Level, Program
from pteflow.ir.errors import ModelError, closest, describe

from ..usercode import import_user_module
from .loaded import LoadedModel


def _load_callable(spec: str, where: str) -> Callable[[], Any]:
    module_name, colon, func_name = spec.rpartition(":")
    if not colon or not module_name or not func_name:
        raise ModelError(
            f"{where}: expected MODULE:FUNCTION (e.g. mypkg.models:build or path/to/file.py:build)"
        )
    module = import_user_module(module_name, where, ModelError)
    func = getattr(module, func_name, None)
    if not callable(func):
        known = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        near = closest(func_name, known) or closest(func_name, known, cutoff=0.0)
        hint = f"; closest: {', '.join(near)}" if near else ""
        raise ModelError(f"{where}: {module_name} has no function {func_name!r}{hint}")
    return func


def _reference(program: Program, where: str) -> dict[str, Any]:
    """Untouched torch modules computing ``program`` (passes may edit it in place).

    EAGER: copies of the modules; ATEN: ``module()`` of a copy of each
    ExportedProgram; EDGE: the same of the edge programs (edge ops run in torch).
    """
    if program.level == Level.EAGER:
        return {m: copy.deepcopy(mod) for m, mod in program.modules().items()}
    if program.level in (Level.ATEN, Level.EDGE):
        return {m: copy.deepcopy(ep).module() for m, ep in program.exported_programs().items()}
    raise ModelError(
        f"{where} gives an {program.level.label} program, which has no torch model to verify "
        "the .pte against; return an EDGE, ATEN or EAGER program"
    )


def _probe(reference: Mapping[str, Any], steps: Sequence[tuple[str, tuple[Any, ...]]], where: str):
    """Run the reference once on its example inputs: a model that refuses them is the
    user's to fix, and says so now instead of failing inside export. Buffers (a KV
    cache) are put back, so the reference still starts from its initial state."""
    import torch

    saved = {
        (m, n): b.detach().clone()
        for m, mod in reference.items()
        if isinstance(mod, torch.nn.Module)
        for n, b in mod.named_buffers()
    }
    try:
        with torch.no_grad():
            for method, inputs in steps:
                reference[method](*inputs)
    except KeyboardInterrupt:
        raise
    except (Exception, SystemExit) as e:
        raise ModelError(
            f"{where}: the model fails on its example inputs ({method}): {describe(e)}"
        ) from e
    finally:
        with torch.no_grad():
            for (m, n), b in saved.items():
                reference[m].get_buffer(n).copy_(b)


def from_callable(spec: str, *, where: str | None = None) -> LoadedModel:
    """Call ``MODULE:FUNCTION``; it returns ``(module, example_inputs)``, optionally with
    dynamic shapes as a third item, or a ``pteflow.ir.Program`` (EAGER, ATEN or EDGE).

    The model runs once on its example inputs before anything is compiled.
    ``where`` names the source in messages (default ``--model 'SPEC'``).

    Raises:
        ModelError: the module does not import, the function raises or exits,
            returns something else, or the model fails on its example inputs.
    """
    where = where or f"--model {spec!r}"
    func = _load_callable(spec, where)
    try:
        made = func()
    except KeyboardInterrupt:
        raise
    except (Exception, SystemExit) as e:
        raise ModelError(f"{where}: {func.__name__}() failed: {describe(e)}") from e
    return from_made(made, where, spec)


def from_made(made: Any, where: str, name: str) -> LoadedModel:
    """A ``LoadedModel`` from what a model function returned (or a user passed to the API):
    ``(module, example_inputs[, dynamic_shapes])`` or a ``Program``. ``name`` describes it.

    Raises:
        ModelError: something else, or the model fails on its example inputs.
    """
    import torch

    if isinstance(made, Program):
        program = made
    else:
        if (
            not isinstance(made, tuple)
            or len(made) not in (2, 3)
            or not isinstance(made[0], torch.nn.Module)
        ):
            raise ModelError(
                f"{where} gave a {type(made).__name__}; expected "
                "(nn.Module, example_inputs[, dynamic_shapes]) or a Program"
            )
        module, inputs = made[0], made[1]
        if not isinstance(inputs, tuple):
            raise ModelError(
                f"{where}: example inputs must be a tuple, got {type(inputs).__name__}"
            )
        program = Program.eager(
            module.eval(), inputs, dynamic_shapes=made[2] if len(made) == 3 else None
        )
    reference = _reference(program, where)
    steps = [(m, tuple(inp)) for m, inp in program.example_inputs.items()]
    _probe(reference, steps, where)
    description = name if program.level == Level.EAGER else f"{name} ({program.level.label})"
    return LoadedModel(program, reference, steps, description)
