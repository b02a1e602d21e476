"""Policies outside the Pass contract: what the pass cache and ``--no-delegate`` ask of a pass.

``PassInfo`` holds scheduling data only. A pass that some policy treats specially says so
by mixing in one of these small classes (class data, no fields, no methods to implement):

    Uncacheable      the pass cache never stores or reuses its result; ``not_cacheable_because``
                     says why (a side effect, a nondeterministic result, one that cannot be
                     serialized). No pass after it is cached in that run.
    Delegating       the pass only prepares for, or does, delegation to ``delegation`` (a
                     backend name); ``--no-delegate`` leaves it out.

and a pass whose options only make sense next to a delegate has a ``without_delegation()``
method (``NoDelegateVariant``) that returns the variant ``--no-delegate`` runs.
The cache and the ``--no-delegate`` filter read these through the functions below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .base import Pass


class Uncacheable:
    """Mixin: the pass cache never stores or reuses this pass's result (say why)."""

    __slots__ = ()
    not_cacheable_because: ClassVar[str]


class Delegating:
    """Mixin: a pass that only prepares for, or does, delegation to one backend."""

    __slots__ = ()
    delegation: ClassVar[str]


@runtime_checkable
class NoDelegateVariant(Protocol):
    """A pass that ``--no-delegate`` runs changed (or drops: None), not as configured."""

    def without_delegation(self) -> Pass | None: ...


def _cls(p: Pass | type[Pass]) -> type:
    return p if isinstance(p, type) else type(p)


def not_cacheable_because(p: Pass | type[Pass]) -> str | None:
    """Why the cache must not store or reuse ``p``'s result, or None when it may."""
    cls = _cls(p)
    return cls.not_cacheable_because if issubclass(cls, Uncacheable) else None


def delegation_of(p: Pass | type[Pass]) -> str | None:
    """The backend ``p`` prepares for or delegates to, or None for every other pass."""
    cls = _cls(p)
    return cls.delegation if issubclass(cls, Delegating) else None


def without_delegation(p: Pass) -> Pass | None:
    """``p`` as ``--no-delegate`` runs it: None to leave it out, else the pass (or variant)."""
    if isinstance(p, NoDelegateVariant):
        return p.without_delegation()
    return None if delegation_of(p) else p
