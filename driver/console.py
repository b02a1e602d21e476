"""A run's console: pteflow's own lines on stdout, upstream noise in the run log.

torch, torchao and ExecuTorch print warnings (Python ``warnings``, ``logging``) and their
C++ libraries write to the process's stderr directly (the runtime's ``[cpuinfo_utils.cpp]``
lines, ``[operator_registry.cpp]`` when a kernel is missing). ``RunConsole`` points file
descriptor 2 at the run log (``m.log`` beside the report) for the whole run, so all of it
lands there, in order, under a header per stage (``model``, one per pass, ``verify``), and
is counted per stage: a Python warning counts once, any other line once.

``verbose`` (``-v``, ``--debug``) also copies the log to the real stderr as it grows;
``live`` (a terminal, not CI) shows the elapsed time of a pass running longer than a few
seconds on its progress line, without breaking it. The real stderr is restored when the
run ends, however it ends (an error, Ctrl-C). pteflow's own warnings (``warn``) go to the
real stderr, not to the log.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

#: a pass running longer than this shows its elapsed time on a terminal
ALIVE_AFTER_S = 3.0
_TICK_S = 0.25


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stderr__):
        if stream is not None:
            with suppress(AttributeError, ValueError, OSError):
                stream.flush()


class RunConsole:
    """Capture fd 2 into ``log`` between ``start(log)`` and ``close()``; count per stage.

    Stages are keyed (``"model"``, ``("pass", rank)``, ``"verify"``); ``counts`` maps a key
    to the number of upstream messages written while it was open, ``labels`` to its name.
    Without ``start`` (no log path: nothing is written) the console captures nothing.
    """

    def __init__(
        self,
        echo: Callable[[str], None],
        *,
        verbose: bool = False,
        live: bool = False,
    ):
        self.echo = echo
        self.verbose = verbose
        self.live = live and not verbose  # -v prints whole lines: nothing to animate
        self.log: Path | None = None
        self._writing: Path | None = None  # the log while the run lasts (renamed at the end)
        self._keep = True
        self.counts: dict[Any, int] = {}
        self.labels: dict[Any, str] = {}
        self._log_fd = -1
        self._saved_fd = -1
        self._stage: Any = None
        self._stage_start = 0
        self._py_lines = 0  # lines of the stage written by our warnings hook
        self._py_count = 0
        self._old_showwarning: Any = None
        self._lock = threading.Lock()
        self._pass_t0: float | None = None  # a progress line is open since then
        self._shown = 0  # live elapsed text currently on the progress line (chars)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._tail_fd = -1

    # ------------------------------------------------------------------ lifetime
    @property
    def capturing(self) -> bool:
        return self._saved_fd >= 0

    def start(self, log: Path) -> None:
        """Send everything written to fd 2 to ``log`` from now on.

        It is written beside ``log`` under a temporary name and renamed to ``log`` when the
        console closes, unless ``discard`` (a refused run writes nothing).
        """
        if self.capturing:
            return
        _flush_std()
        log = _not_our_output(log)
        writing = log.with_name(f".{log.name}.{os.getpid()}.tmp")
        try:
            if log.is_dir():
                raise IsADirectoryError(21, "Is a directory")
            log.parent.mkdir(parents=True, exist_ok=True)  # as emit makes the .pte's folder
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            self._log_fd = os.open(writing, flags, 0o644)
        except OSError as e:
            from pteflow.ir.errors import UserError

            raise UserError(
                f"cannot write the run log {log}: {e.strerror}; move it away or choose another -o"
            ) from None
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all (2>&-): nothing to protect
            os.close(self._log_fd)
            return
        self.log, self._writing = log, writing
        self._saved_fd = saved
        os.dup2(self._log_fd, 2)
        self._old_showwarning = warnings.showwarning
        warnings.showwarning = self._showwarning
        if self.verbose:
            self._tail_fd = os.open(writing, os.O_RDONLY)
        if self.verbose or self.live:
            self._thread = threading.Thread(target=self._tick, name="pteflow-console", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """End the open stage, give fd 2 back and put the log in place (idempotent)."""
        try:
            self.end_stage()
        finally:
            self._release()
            writing, self._writing = self._writing, None
            if writing is not None and self.log is not None:
                with suppress(OSError):
                    if self._keep:
                        os.replace(writing, self.log)
                    else:
                        writing.unlink()

    def discard(self) -> None:
        """Close without leaving a log (a refused run writes nothing)."""
        self._keep = False
        self.close()
        self.log = None

    def _release(self) -> None:
        if not self.capturing:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        _flush_std()
        if self._tail_fd >= 0:
            self._copy_tail()
            os.close(self._tail_fd)
            self._tail_fd = -1
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        os.close(self._log_fd)
        self._saved_fd = self._log_fd = -1
        if warnings.showwarning == self._showwarning:
            warnings.showwarning = self._old_showwarning

    def __enter__(self) -> RunConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and self._pass_t0 is not None:
            self.echo("\n")  # end the failed pass's progress line before the error
        self.close()

    # ------------------------------------------------------------------ stages
    def stage(self, key: Any, label: str) -> None:
        """Close the open stage and open ``key``: what follows is counted for it."""
        self.end_stage()
        self.labels[key] = label
        self.counts.setdefault(key, 0)
        if not self.capturing:
            return
        _flush_std()
        os.write(self._log_fd, f"==== {label} ====\n".encode())
        self._stage = key
        self._stage_start = os.fstat(self._log_fd).st_size
        self._py_lines = self._py_count = 0

    def end_stage(self) -> None:
        """Count what the open stage wrote (a Python warning once, other lines once each)."""
        with self._lock:
            self._pass_t0 = None
            self._shown = 0
        if self._stage is None or not self.capturing:
            self._stage = None
            return
        _flush_std()
        assert self._writing is not None
        with open(self._writing, "rb") as f:
            f.seek(self._stage_start)
            text = f.read()
        lines = sum(1 for ln in text.splitlines() if ln.strip())
        self.counts[self._stage] += self._py_count + max(0, lines - self._py_lines)
        self._stage = None

    def pass_started(self, rank: int, label: str) -> None:
        """A pass's progress line is open (``live`` shows its elapsed time after a while)."""
        self.timed_stage(("pass", rank), label)

    def timed_stage(self, key: Any, label: str) -> None:
        """``stage``, with a progress line open: ``live`` shows its elapsed time after a
        while, until the stage ends."""
        self.stage(key, label)
        with self._lock:
            self._pass_t0 = time.perf_counter()

    @contextmanager
    def uncaptured(self) -> Iterator[None]:
        """fd 2 is the real stderr inside (pteflow's own warnings, tracebacks)."""
        if not self.capturing:
            yield
            return
        _flush_std()
        with self._lock:
            if self._shown or self._pass_t0 is not None:
                self.echo("\n")  # never write into an open progress line
                self._pass_t0, self._shown = None, 0
        os.dup2(self._saved_fd, 2)
        try:
            yield
        finally:
            _flush_std()
            os.dup2(self._log_fd, 2)

    def wrap_warn(self, warn: Callable[[str], None]) -> Callable[[str], None]:
        def warn_on_console(text: str) -> None:
            with self.uncaptured():
                warn(text)

        return warn_on_console

    def stage_counts(self) -> list[tuple[Any, str, int]]:
        """(key, label, count) of every stage that wrote something, in order."""
        return [(k, self.labels[k], n) for k, n in self.counts.items() if n]

    def report_warnings(self, report: dict[str, Any]) -> str:
        """Put the per-stage upstream warning counts in the run's ``report`` (and each
        pass's entry); the summary's words for them ("" when nothing was written)."""
        stages = self.stage_counts()
        report["log"] = str(self.log) if self.log else None
        report["upstream_warnings"] = {label: n for _, label, n in stages}
        by_rank = {key[1]: n for key, _, n in stages if isinstance(key, tuple)}
        for rank, entry in enumerate(report["passes"], start=1):
            entry["upstream_warnings"] = by_rank.get(rank, 0)
        if not stages or self.log is None:
            return ""
        total = sum(n for _, _, n in stages)
        ranked = sorted(stages, key=lambda s: -s[2])
        each = [f"{label.split('] ')[-1].split('{')[0]} {n}" for _, label, n in ranked[:4]]
        more = f", +{len(ranked) - 4} more" if len(ranked) > 4 else ""
        return (
            f"upstream warnings in {self.log}: {', '.join(each)}{more} "
            f"({total} in all; -v shows them)"
        )

    # ------------------------------------------------------------------ internals
    def _showwarning(
        self,
        message: Any,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        if file is not None and file not in (sys.stderr, sys.__stderr__):
            file.write(text)  # written somewhere on purpose: not ours to redirect
            return
        _flush_std()
        os.write(self._log_fd if self.capturing else 2, text.encode(errors="replace"))
        self._py_count += 1
        self._py_lines += sum(1 for ln in text.splitlines() if ln.strip())

    def _copy_tail(self) -> None:
        while True:
            chunk = os.read(self._tail_fd, 65536)
            if not chunk:
                return
            os.write(self._saved_fd, chunk)

    def _tick(self) -> None:
        while not self._stop.wait(_TICK_S):
            if self._tail_fd >= 0:
                try:
                    self._copy_tail()
                except OSError:
                    return
            if not self.live:
                continue
            with self._lock:
                if self._pass_t0 is None:
                    continue
                elapsed = time.perf_counter() - self._pass_t0
                if elapsed < ALIVE_AFTER_S:
                    continue
                text = f" {elapsed:.0f}s"
                # write the elapsed time, then step back over it: the pass's final
                # " 12.34s" overwrites it (it is always at least as long)
                self.echo(text + "\b" * len(text))
                self._shown = len(text)


def _not_our_output(log: Path) -> Path:
    """``log``, or ``<stem>.upstream.log`` when our stdout or stderr already goes to ``log``
    (``driver run -o m.pte > m.log 2>&1``): renaming the run log over that file would
    replace what the user redirected there."""
    try:
        target = os.stat(log)
    except OSError:
        return log
    for fd in (1, 2):
        try:
            ours = os.fstat(fd)
        except OSError:
            continue
        if (ours.st_dev, ours.st_ino) == (target.st_dev, target.st_ino):
            return log.with_name(f"{log.stem}.upstream{log.suffix}")
    return log
