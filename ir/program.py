"""The Program: what a pass transforms, at one level, for one or more methods."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .dims import DeferredShapes, holds_dim
from .errors import ModelError
from .fact import Fact
from .levels import Level

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram


def _fact_set(value: Iterable[Fact]) -> frozenset[Fact]:
    return frozenset(value)


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


def _shapes_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Dynamic shapes naming an ``ir.dims.Dim`` stay deferred (torch's made when read)."""
    if isinstance(value, DeferredShapes):
        return value
    shapes = dict(value or {})
    return DeferredShapes(shapes) if holds_dim(shapes) else shapes


@attrs.frozen
class Program:
    """The thing being compiled.

    ``artifact`` depends on ``level``:

    ======== ==========================================================
    EAGER    ``dict[method, torch.nn.Module]``
    ATEN     ``dict[method, torch.export.ExportedProgram]``
    EDGE     ``executorch.exir.EdgeProgramManager``
    EXECUTORCH ``executorch.exir.ExecutorchProgramManager``
    ======== ==========================================================

    ``example_inputs`` and ``dynamic_shapes`` are keyed by method name; dynamic shapes
    naming an ``ir.dims.Dim`` are kept as ``ir.dims.DeferredShapes`` (read as torch's).
    ``metadata`` holds model facts that are data, not properties: ``n_layers``,
    ``max_seq_len``, ``vocab_size``, ... (the to-edge pass turns the entries
    listed in ``constant_methods`` into constant methods of the ``.pte``).
    The program is a value: passes return a new one with ``evolve``; the torch
    objects inside may be shared with the input program.
    """

    level: Level
    artifact: Any = attrs.field(repr=False)
    example_inputs: Mapping[str, tuple[Any, ...]] = attrs.field(converter=_frozen_map, repr=False)
    dynamic_shapes: Mapping[str, Any] = attrs.field(factory=dict, converter=_shapes_map, repr=False)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    facts: frozenset[Fact] = attrs.field(factory=frozenset, converter=_fact_set)

    # ------------------------------------------------------------------ building

    @classmethod
    def eager(
        cls,
        module: torch.nn.Module | Mapping[str, torch.nn.Module],
        example_inputs: tuple[Any, ...] | Mapping[str, tuple[Any, ...]],
        *,
        dynamic_shapes: Any = None,
        metadata: Mapping[str, Any] | None = None,
        facts: Iterable[Fact] = (),
    ) -> Program:
        """An EAGER program; a single module becomes method ``forward``."""
        modules = dict(module) if isinstance(module, Mapping) else {"forward": module}
        if isinstance(example_inputs, Mapping):
            inputs = dict(example_inputs)
            shapes = dynamic_shapes or {}
        else:
            inputs = {"forward": tuple(example_inputs)}
            shapes = {"forward": dynamic_shapes} if dynamic_shapes is not None else {}
        missing = set(modules) - set(inputs)
        if missing:
            raise ModelError(
                f"no example inputs for method(s) {sorted(missing)}; "
                "give a tuple of inputs per method"
            )
        return cls(Level.EAGER, modules, inputs, shapes, metadata or {}, frozenset(facts))

    def evolve(self, **changes: Any) -> Program:
        """A copy with ``changes`` applied (attrs.evolve)."""
        return attrs.evolve(self, **changes)

    def with_facts(self, gained: Iterable[Fact] = (), lost: Iterable[Fact] = ()) -> Program:
        return self.evolve(facts=(self.facts - set(lost)) | set(gained))

    # ------------------------------------------------------------------ reading

    @property
    def method_names(self) -> list[str]:
        if self.level <= Level.ATEN:
            return list(self.artifact)
        return list(self.artifact.methods)

    def modules(self) -> dict[str, torch.nn.Module]:
        """The eager module per method (EAGER only)."""
        self._expect(Level.EAGER)
        return dict(self.artifact)

    def exported_programs(self) -> dict[str, ExportedProgram]:
        """The ExportedProgram per method (ATEN, EDGE, EXECUTORCH)."""
        if self.level == Level.EAGER:
            raise TypeError("an EAGER program has no ExportedProgram; export it first")
        if self.level == Level.ATEN:
            return dict(self.artifact)
        return {m: self.artifact.exported_program(m) for m in self.artifact.methods}

    def graph_modules(self) -> dict[str, torch.fx.GraphModule]:
        """The top-level graph module per method (ATEN and later)."""
        return {m: ep.graph_module for m, ep in self.exported_programs().items()}

    def _expect(self, level: Level) -> None:
        if self.level != level:
            raise TypeError(f"expected a {level.label} program, got {self.level.label}")

    def __repr__(self) -> str:
        facts = ",".join(sorted(f.name for f in self.facts))
        return f"Program({self.level.label}, methods={self.method_names}, facts={{{facts}}})"
