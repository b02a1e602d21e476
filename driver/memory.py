"""Where a run's memory goes: the process's resident set after every pass.

``MemoryWatch`` is a ``PassObserver``: after each pass it reads ``/proc/self/status``
(``VmRSS``: resident now; ``VmHWM``: the process's peak so far). A pass whose peak is
above the previous pass's raised the process peak by that much: ``--timing`` and the
JSON report show both, so a user sees which pass costs the memory. Nothing is reset
(clearing the kernel's high-water mark would hide the peak from ``wait4``/``time``).
Off Linux (no ``/proc``) the peak comes from ``resource.getrusage`` and the current
size is unknown.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

from pteflow.passes.manager import PassObserver

_MB = 1024 * 1024


def rss_mb() -> tuple[float | None, float]:
    """(resident now, peak so far) of this process in MB (now is None when unknown)."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        now = int(fields["VmRSS"].split()[0]) * 1024 / _MB
        peak = int(fields["VmHWM"].split()[0]) * 1024 / _MB
        return now, peak
    except (OSError, KeyError, ValueError):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # kilobytes on Linux, bytes on macOS
        return None, peak / (_MB if sys.platform == "darwin" else 1024)


class MemoryWatch(PassObserver):
    """Resident and peak memory after every pass that runs, keyed by run rank."""

    flag = "--timing (memory)"

    def __init__(self) -> None:
        self.start = rss_mb()
        self.rows: dict[int, dict[str, Any]] = {}
        self._peak_before = self.start[1]

    def before(self, rank: int, pass_: Any, program_in: Any) -> None:
        self._peak_before = rss_mb()[1]

    def after(self, rank: int, pass_: Any, program_out: Any, record: Any) -> None:
        now, peak = rss_mb()
        self.rows[rank] = {
            "rss_mb": now,
            "peak_rss_mb": peak,
            "peak_raised_mb": max(0.0, peak - self._peak_before),
        }

    def finish(self) -> None:
        """Take the end figures (after verification)."""
        self.end = rss_mb()

    def to_json(self) -> dict[str, Any]:
        """MB: at the start of the passes (the model loaded), and at the end."""
        end = getattr(self, "end", None) or rss_mb()
        return {
            "loaded_rss_mb": self.start[0],
            "loaded_peak_rss_mb": self.start[1],
            "end_rss_mb": end[0],
            "peak_rss_mb": end[1],
        }

    def for_record(self, rank: int) -> dict[str, Any]:
        """The memory row of the pass at ``rank`` (empty for a pass that did not run)."""
        return self.rows.get(rank, {})


class MappedPagesRelease(PassObserver):
    """Around every pass that runs, hand back the pages of memory-mapped data files (the
    checkpoint) that were read and not modified (``pteflow.ir.mapped_pages``): a pass
    that read the weights (the run's key hashing them, partitioning, the emitter) does
    not leave them resident for the rest of the run. Placed before ``MemoryWatch``, whose
    rows then show what stays resident after each pass."""

    def before(self, rank: int, pass_: Any, program_in: Any) -> None:
        from pteflow.ir.mapped_pages import release_mapped_files

        release_mapped_files()

    def after(self, rank: int, pass_: Any, program_out: Any, record: Any) -> None:
        self.before(rank, pass_, program_out)


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """While the passes run, the collector leaves alone what was alive before them.

    Python's cyclic collector walks every tracked object at each full collection (14-30
    in an export; at stories 2.6 s in all, at 135M 15% of the run). The objects alive when
    the passes start (torch's and ExecuTorch's modules, the eager model: ~310k at stories)
    outlive the run, so walking them finds nothing: they are moved to the permanent
    generation (``gc.freeze``, after a collection so that no garbage is frozen) and given
    back to the collector when the passes end (``gc.unfreeze``), so that an API caller's
    objects are collected as before. Garbage made during the run is collected as before.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
