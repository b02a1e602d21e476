"""The Fact type and the checker builders facts are made of.

A fact is a value (compared by name). It may carry a checker that verifies it
on the real graph: ``checker(program)`` returns ``None`` when the fact holds
and a one-line reason when it does not. The PassManager runs the checker of
every fact a pass claims, so a pass that says ``quantized.pt2e`` and leaves
no quantize ops is caught.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from .levels import Level
from .views import delegation_summary, op_histogram, op_name, wrapped_ops

if TYPE_CHECKING:
    from .program import Program

Checker = Callable[["Program"], "str | None"]


@attrs.frozen
class Fact:
    """A named property of a Program. Equality and hash are by name."""

    name: str = attrs.field()
    meaning: str = attrs.field(eq=False)
    checker: Checker | None = attrs.field(default=None, eq=False, repr=False)
    #: Holds of a program no pass has touched (e.g. "no torchao quantized linear"), until a
    #: pass invalidates it: the manager assumes it at the start of a plan and checks it on
    #: the input program before running.
    assumed: bool = attrs.field(default=False, eq=False)

    @name.validator
    def _check_name(self, _attr: attrs.Attribute, value: str) -> None:
        if not value or value != value.strip() or " " in value:
            raise ValueError(f"fact name must be a non-empty word, got {value!r}")

    def check(self, program: Program) -> str | None:
        """``None`` if the fact holds on ``program`` (or has no checker), else why not."""
        return None if self.checker is None else self.checker(program)

    def __str__(self) -> str:
        return self.name


# --------------------------------------------------------------------------- checkers


def _targets(program: Program, *, include_delegated: bool = False) -> set[str]:
    """Qualified names of every op in the program's graphs (EAGER: none).

    A mutating custom op (``llama::update_cache``) appears in an exported graph
    wrapped in ``auto_functionalized``; the wrapped op's name counts too.
    """
    names = {op_name(t) for t in op_histogram(program, include_delegated=include_delegated)}
    return names | {op_name(t) for t in wrapped_ops(program)}


def _needs_graph(level: Level) -> bool:
    return level >= Level.ATEN


def ops_present(*fragments: str, include_delegated: bool = True) -> Checker:
    """A checker: at ATEN and later, some op's name contains one of ``fragments``."""

    def check(program: Program) -> str | None:
        if not _needs_graph(program.level):
            return None
        names = _targets(program, include_delegated=include_delegated)
        if any(f in n for n in names for f in fragments):
            return None
        return f"no op matching {' or '.join(fragments)} in the graph"

    return check


def _has_delegate(backend_id: str | None) -> Checker:
    def check(program: Program) -> str | None:
        if program.level < Level.EDGE:
            return None
        ids = {d.backend_id for d in delegation_summary(program)}
        if (backend_id is None and ids) or backend_id in ids:
            return None
        want = backend_id or "any backend"
        return f"no delegate for {want} (delegates: {sorted(ids) or 'none'})"

    return check


def delegated(backend_id: str, short: str) -> Fact:
    """The fact that part of the program is delegated to ``backend_id``."""
    return Fact(
        f"delegated.{short}",
        f"some of the graph is lowered to {backend_id}",
        _has_delegate(backend_id),
    )


def _eager_module_named(*class_fragments: str) -> Checker:
    """A checker: at EAGER some submodule's class name contains one of the fragments."""

    def check(program: Program) -> str | None:
        if program.level != Level.EAGER:
            return None
        for module in program.modules().values():
            for sub in module.modules():
                if any(f in type(sub).__name__ for f in class_fragments):
                    return None
        return f"no submodule of class *{'* or *'.join(class_fragments)}*"

    return check


def eager_classes(*names: str, absent: tuple[str, ...] = ()) -> Checker:
    """A checker: at EAGER some submodule's class is one of ``names`` (exactly) and none is
    one of ``absent`` (a source pass that replaces modules leaves none of the old ones)."""

    def check(program: Program) -> str | None:
        if program.level != Level.EAGER:
            return None
        seen = {type(sub).__name__ for m in program.modules().values() for sub in m.modules()}
        left = sorted(seen & set(absent))
        if left:
            return f"submodules of class {', '.join(left)} are still there"
        if seen & set(names):
            return None
        return f"no submodule of class {' or '.join(names)}"

    return check


def all_of(*checkers: Checker) -> Checker:
    def check(program: Program) -> str | None:
        for c in checkers:
            why = c(program)
            if why:
                return why
        return None

    return check
