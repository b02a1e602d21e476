"""Emit's check and rename, left to the caller, so the program can be released first.

ExecuTorch's runtime loading the written ``.pte`` (XNNPACK packs its weights then) is
the largest allocation of an fp32 run; while emit runs, its input program still holds
every delegate payload, so the process holds the weights three times. Inside
``deferred_commits()`` the emit pass writes the file beside its destination (flushed to
disk) and hands back a ``PendingPte``: the caller reads what it needs from the program,
lets go of it, then ``commit()``s: the runtime loads (and smoke-runs) the file and it is
renamed into place. A pending file that is never committed (an error, Ctrl-C) is removed
when the block exits, so the destination is written whole or not at all, as always.

Outside such a block (a ``PassManager`` run by a test, a pass-level user) emit checks and
renames by itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

import attrs

from pteflow.ir import interrupts

_PENDING: ContextVar[list[PendingPte] | None] = ContextVar("pteflow_pending_pte", default=None)


@attrs.define
class PendingPte:
    """A ``.pte`` written to ``tmp`` that becomes ``path`` once ``check(tmp)`` passes."""

    path: Path
    tmp: Path
    check: Callable[[Path], None]
    position: int  # the emit pass's index in the pipeline as listed
    done: bool = False

    def commit(self) -> None:
        """``check_then_rename`` the file (removed on any failure)."""
        try:
            check_then_rename(self.tmp, self.path, self.check)
        finally:
            self.done = True  # renamed or removed, either way

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)
        self.done = True


def check_then_rename(tmp: Path, path: Path, check: Callable[[Path], None] | None) -> None:
    """``check(tmp)`` may raise; then ``tmp`` is renamed over ``path``. On any failure (or
    Ctrl-C) ``tmp`` is removed and ``path`` is left as it was."""
    try:
        if check is not None:
            check(tmp)
        interrupts.check()  # a Ctrl-C swallowed on the way: nothing is published
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def pending_list() -> list[PendingPte] | None:
    """Where an emit pass running now should leave its file (None: commit it yourself)."""
    return _PENDING.get()


@contextlib.contextmanager
def deferred_commits() -> Iterator[list[PendingPte]]:
    """Emit passes run inside leave their files pending in the yielded list; whatever is
    not committed when the block exits is removed."""
    pending: list[PendingPte] = []
    token = _PENDING.set(pending)
    try:
        yield pending
    finally:
        _PENDING.reset(token)
        for p in pending:
            if not p.done:
                p.discard()
