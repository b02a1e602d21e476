"""What a run tells the world: one record per pass, and one observer mechanism.

``PassObserver`` is the only hook the manager calls (progress lines, IR dumps, numerics,
reproducers, bisect's watch): ``started``/``finished`` for every pass of the order
(restored from the cache or run), ``before``/``after``/``failed`` around the passes that
run, ``log`` for each ``ctx.log`` message of a running pass (also kept on its
``PassRecord.log``, so the report has them), and ``restarted`` when a run that resumed
from the cache starts again without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from pteflow.ir import Program

    from .base import Pass


@attrs.frozen
class PassRecord:
    """What happened in one pass."""

    position: int
    name: str
    options: str
    level_in: str
    level_out: str
    wall_s: float
    cpu_s: float
    check_s: float
    ops_before: int
    ops_after: int
    facts_gained: tuple[str, ...]
    facts_lost: tuple[str, ...]
    modified: bool
    delegated: Mapping[str, int] = attrs.field(factory=dict)
    cached: bool = False  # restored from the pass cache, not run
    log: tuple[str, ...] = ()  # what the pass said through ctx.log, in order

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class PassObserver:
    """Hooks the manager calls around every pass (see the module docstring).

    ``program_in`` may be edited in place by the pass: read what you need from
    it in ``before`` (``after`` sees it as the pass left it). Observers must not
    change the programs they see.
    """

    #: True for observers that must see every pass run (IR dumps, numerics, a reference
    #: program): the driver then does not resume from the pass-result cache.
    needs_every_pass: bool = False
    #: the command-line flag that asked for the observer (for messages)
    flag: str = ""

    def started(self, rank: int, pass_: Pass) -> None:
        """Called first for every pass of the order, run or restored from the cache."""

    def before(self, rank: int, pass_: Pass, program_in: Program) -> None:
        """Called before ``pass_`` (at run position ``rank``) runs on ``program_in``."""

    def log(self, rank: int, pass_: Pass, message: str) -> None:
        """Called for each ``ctx.log(message)`` of the running ``pass_``."""

    def after(self, rank: int, pass_: Pass, program_out: Program, record: PassRecord) -> None:
        """Called after ``pass_`` ran and its output passed the configured checks."""

    def finished(self, rank: int, pass_: Pass, record: PassRecord) -> None:
        """Called last for every pass of the order with its record (``cached`` if restored)."""

    def failed(self, rank: int, pass_: Pass, error: BaseException) -> None:
        """Called when ``pass_`` raised or broke an invariant, before the error propagates."""

    def restarted(self, rank: int, pass_: Pass) -> None:
        """The run failed at ``pass_`` on a program restored from the cache: it starts again
        from the input, without the cache (every hook is called again from rank 0)."""


class Observers(PassObserver):
    """Many observers as one: each hook is called on each, in order."""

    def __init__(self, observers: Sequence[PassObserver]):
        self.all = list(observers)

    def started(self, rank: int, pass_: Pass) -> None:
        for o in self.all:
            o.started(rank, pass_)

    def before(self, rank: int, pass_: Pass, program_in: Program) -> None:
        for o in self.all:
            o.before(rank, pass_, program_in)

    def log(self, rank: int, pass_: Pass, message: str) -> None:
        for o in self.all:
            o.log(rank, pass_, message)

    def after(self, rank: int, pass_: Pass, program_out: Program, record: PassRecord) -> None:
        for o in self.all:
            o.after(rank, pass_, program_out, record)

    def finished(self, rank: int, pass_: Pass, record: PassRecord) -> None:
        for o in self.all:
            o.finished(rank, pass_, record)

    def failed(self, rank: int, pass_: Pass, error: BaseException) -> None:
        for o in self.all:
            o.failed(rank, pass_, error)

    def restarted(self, rank: int, pass_: Pass) -> None:
        for o in self.all:
            o.restarted(rank, pass_)
