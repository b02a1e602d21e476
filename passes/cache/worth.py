"""Which pass results are worth storing whole: the rest are stored as their key only.

Storing a result costs the run its graph serialization (``codec.encode``: serde builds
its schema objects from the live graph, ~1 s for a stories-size ATEN program). That work
is pure Python, so it stays on the critical path whichever thread does it: the main
thread holds the GIL for nearly all of a run (py-spy ``--gil``), a writer thread doing it
would only take turns with it. What the cache can save is doing it for nothing.

A resume starts after the last entry of the cached prefix that holds a program; an entry
that holds only its key (as EAGER results always do) makes the run start from the last
one before it and run the passes in between again. Storing is paid by every cold run,
the re-run it saves only by a later run that resumes right there; so a result is stored
whole only when re-running the passes since the last restorable entry (their recorded
wall and check time) would cost at least ``PAYBACK`` times what serializing it is
estimated to (seconds per op at its level, measured on this run's earlier entries; the
first entry at each level is always stored, which measures it). A cheap graph rewrite
after export (remove-redundant-transposes at stories: 0.23-0.3 s to run, 0.16-0.21 s to
store) sits near the line, a key in some runs; to-edge is always stored.
"""

from __future__ import annotations

from typing import Any

from pteflow.ir import Level

#: How many times its serialization a result's re-run must cost for it to be stored.
PAYBACK = 2.0


class StoreBudget:
    """One session's running account; see the module docstring."""

    def __init__(self) -> None:
        self.since = 0.0  # seconds to re-run the passes after the last restorable entry
        self._per_op: dict[Level, float] = {}

    def ran(self, record: dict[str, Any]) -> None:
        """A pass ran (its result is being staged): a resume before it would run it again."""
        self.since += float(record.get("wall_s") or 0.0) + float(record.get("check_s") or 0.0)

    def worth_storing(self, level: Level, ops: int) -> bool:
        """Re-running since the last restorable entry costs at least ``PAYBACK`` times
        storing this result."""
        rate = self._per_op.get(level)
        return rate is None or self.since >= PAYBACK * rate * max(ops, 1)

    def stored(self, level: Level, ops: int, seconds: float) -> None:
        """A result was serialized in ``seconds``: it is restorable, and the new rate."""
        self._per_op[level] = seconds / max(ops, 1)
        self.since = 0.0

    def restorable(self) -> None:
        """The entry just staged (an alias of a restorable one) restores a program."""
        self.since = 0.0
