"""What a model source gives the driver (``LoadedModel``), how messages name the source,
and which passes apply to a program given at a later level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from pteflow.ir import Level, Program
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


def source_label(model: str | None, pipeline: Any) -> str:
    """How messages name a model source: the ``--model`` flag, or the pipeline file's key."""
    if model:
        return f"--model {model!r}"
    return f"pipeline {pipeline.name}: model {pipeline.model!r}" if pipeline else "the model"


def fit_to_level(passes: Sequence[Any], level: Level, where: str) -> tuple[list[Any], list[str]]:
    """The passes that apply to a model given as a ``level`` program, and those left out.

    A conversion to a level the program has already reached (``export`` for an
    ATEN program; ``export`` and ``to-edge`` for an EDGE one) has nothing left to
    do and is left out. Any other pass that reads an earlier level is refused: its
    work (a source rewrite, a quantization) would silently not happen.

    Raises:
        ModelError: a non-conversion pass reads a level before ``level``.
    """
    kept, left_out = [], []
    for p in passes:
        c = p.contract
        if c.level_in >= level:
            kept.append(p)
        elif c.is_conversion and c.level_out <= level:
            left_out.append(p.describe())
        else:
            raise ModelError(
                f"{where} gives an {level.label} program, but {p.name} reads "
                f"{c.level_in.label} programs; drop {p.name} from the pipeline or return "
                f"an {c.level_in.label} program (or the module and example inputs)"
            )
    return kept, left_out
