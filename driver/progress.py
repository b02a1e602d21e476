"""The progress lines of ``driver run``: one per pass, as the manager reports it."""

from __future__ import annotations

from typing import Any

from pteflow.passes.observers import PassObserver

from .options import Echo


class Progress(PassObserver):
    """``[ 3/12] to-edge ... 0.41s`` per pass, each pass a stage of the run log
    (``console``); with ``logs`` (``-v``), what the pass logged."""

    def __init__(self, total: int, out: Echo, console: Any, *, newline: bool, logs: bool):
        self.total, self.out, self.console, self.logs, self.done = total, out, console, logs, 0
        self.end = "\n" if newline else ""  # printed IR goes between a pass's start and end

    def started(self, rank: int, pass_: Any) -> None:
        self.done += 1
        self.out(f"[{self.done:2d}/{self.total}] {pass_.describe()} ...{self.end}")
        self.console.pass_started(self.done, f"[{self.done}/{self.total}] {pass_.describe()}")

    def finished(self, rank: int, pass_: Any, record: Any) -> None:
        self.console.end_stage()
        changed = "" if record.modified else "  (no change)"
        cached = "  (cached)" if record.cached else ""
        self.out(f" {record.wall_s:.2f}s{changed}{cached}\n")
        if self.logs:
            for line in record.log:
                self.out(f"        {pass_.name}: {line}\n")

    def restarted(self, rank: int, pass_: Any) -> None:
        self.done = 0  # the cache's warning said why; the passes run again
        self.out("\n")
