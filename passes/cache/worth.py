"""Which pass results are worth storing whole: the rest are stored as their key only.

With the thread writer (``writer.py``), storing a result costs the run its graph
serialization (``codec.encode``: serde builds its schema objects from the live graph,
~1 s for a stories-size ATEN program): pure Python, on the main thread, which holds the
GIL for nearly all of a run (py-spy ``--gil``). With the forked writer (``forked.py``)
a child does it; the run pays only when the next result is ready while that child is
still running (one child at a time). Either way the cache can save doing it for nothing.

A resume starts after the last entry of the cached prefix that holds a program; an entry
that holds only its key (as EAGER results always do) makes the run start from the last
one before it and run the passes in between again. Storing is paid by every cold run,
the re-run it saves only by a later run that resumes right there; so a result is stored
whole only when re-running the passes since the last restorable entry (their recorded
wall and check time) would cost at least ``PAYBACK`` times what serializing it is
estimated to (seconds per op at its level, measured on this run's earlier entries; the
first entry at each level is always stored, which measures it, unless a forked child is
still storing the previous result: then the estimate is how long that child has run).
A cheap graph rewrite after export (remove-redundant-transposes at stories: 0.23-0.3 s
to run, 0.16-0.21 s to store) sits near the line, a key in some runs; to-edge is always
stored.
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

    def worth_storing(self, level: Level, ops: int, busy_s: float = 0.0) -> bool:
        """Re-running since the last restorable entry costs at least ``PAYBACK`` times
        storing this result. ``busy_s``: how long the forked writer's child storing the
        previous result has been running; while none at ``level`` has reported its time,
        storing this one would wait for that child, which takes at least as long."""
        rate = self._per_op.get(level)
        if rate is None:
            return self.since >= PAYBACK * busy_s
        return self.since >= PAYBACK * rate * max(ops, 1)

    def stored(self, level: Level, ops: int, seconds: float) -> None:
        """A result was serialized in ``seconds``: it is restorable, and the new rate."""
        self.measured(level, ops, seconds)
        self.since = 0.0

    def measured(self, level: Level, ops: int, seconds: float) -> None:
        """A result of ``ops`` ops at ``level`` took ``seconds`` to serialize."""
        self._per_op[level] = seconds / max(ops, 1)

    def restorable(self) -> None:
        """The entry just staged (an alias of a restorable one) restores a program."""
        self.since = 0.0
