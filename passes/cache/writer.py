"""The background thread writer: entries are pickled, hashed, compressed and written off
the critical path, while the next passes run. (On Linux the forked writer, ``forked.py``,
is used instead: it takes the graph serialization off the critical path too.)

A session hands each pass result over as a ``Job`` (its header and the value to pickle:
graphs already serialized, tensors and byte strings as references, never copies: they
are not modified once a pass has returned them). The writer thread stores the job's
blobs, then its entry in a temporary file; the entry becomes visible (renamed into place)
only once the session has committed it (its claims were checked) and the file is
complete, whichever comes last. An entry never committed is never visible: its temporary
file is removed when the session is abandoned, at ``close``, or at process exit.

The queue is bounded (``MAX_QUEUED`` results in flight), so a slow disk slows the run
rather than keeping old programs alive. A finished run waits for its writer (``close``).
A run that did not finish (a pass failed, SIGINT) leaves its writer open: at process exit
(``atexit``) or when the session is collected, it is abandoned after the job in hand;
entries committed and written are visible, nothing else is (no half entries). SIGTERM
and SIGKILL end the process at once: temporary files may stay (``evict`` removes them
after an hour), entries are whole or absent.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
import time
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from . import blobs, codec

if TYPE_CHECKING:
    from .store import PassCache

MAX_QUEUED = 4
_LIVE: weakref.WeakSet[Writer] = weakref.WeakSet()


@attrs.define(eq=False)
class Job:
    key: str
    header: dict[str, Any]
    value: Any  # what the payload pickles (None: header only)
    describe: str
    committed: bool = False
    tmp: Path | None = None
    done: bool = False
    encode: Any = None  # a forked writer's: makes ``value`` in the child (forked.py)
    encode_s: float | None = None  # how long that took (the child's report)
    held: Any = None  # the byte strings the parent holds while the child hashes them
    delegates: Any = None  # the delegates it holds while the child serializes them


class Writer:
    """One thread writing one session's jobs in order; see the module docstring."""

    snapshots = False  # ``submit`` takes encoded values (see forked.py for the other)

    def __init__(self, cache: PassCache):
        self.cache = cache
        self.write_s = 0.0
        self.stored = 0  # entries made visible
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=MAX_QUEUED)
        self._lock = threading.Condition()
        self._pending = 0
        self._jobs: list[Job] = []
        self._abandoned = False
        # the run's digests of byte strings (``PassCache.digests``, as the forked writer's
        # children fill it): the full-run entry does not hash the payloads again
        self._digests = cache.digests
        self._present: set[str] = set()  # blobs this writer put (written or refreshed)
        self._thread = threading.Thread(target=self._loop, name="pteflow-cache", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    # ---------------------------------------------------------------- the session's side

    def collect(self) -> None:
        """(The forked writer's: reports to take. This one's jobs were encoded.)"""

    def busy_s(self) -> float:
        return 0.0

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending += 1
            self._jobs.append(job)
        self._queue.put(job)

    def commit(self, jobs: list[Job]) -> None:
        """Mark ``jobs`` sound; publish those already written."""
        with self._lock:
            for job in jobs:
                job.committed = True
                if job.tmp is not None:
                    self._publish(job)

    def close(self, *, abandon: bool = False, wait: float | None = None) -> None:
        """Stop the thread: after writing what is queued, or (``abandon``) after the job
        it is writing. Removes the temporary files of entries that did not become visible.
        ``wait``: how long to wait for the thread (None: until it stops)."""
        if abandon:
            with self._lock:
                self._abandoned = True
        else:
            self._queue.put(None)
        self._thread.join(timeout=wait)
        with self._lock:
            self._abandoned = True
            for job in self._jobs:
                if not job.done:
                    remove_tmp(job)
            partial = self.cache.partial.pop(self._thread.ident or 0, None)
            if partial is not None:  # the thread is still writing it: never to be visible
                with contextlib.suppress(OSError):
                    partial.unlink()
            if not self._thread.is_alive():  # what it remembered held the payloads alive
                if abandon:  # (else the full-run entry uses them; the driver clears them)
                    self.cache.forget_held()
                for job in self._jobs:
                    job.value = None
        _LIVE.discard(self)

    # ---------------------------------------------------------------- the thread

    def _loop(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self._abandoned:
                    return
                continue
            if job is None:
                return
            t0 = time.perf_counter()
            try:
                if not self._abandoned:
                    self._write(job)
            finally:
                self.write_s += time.perf_counter() - t0
                with self._lock:
                    self._pending -= 1
                    self._lock.notify_all()

    def _write(self, job: Job) -> None:
        try:
            tmp = write_entry(self.cache, job.key, job.header, job.value, self._put, self._digests)
            job.value = None  # the program's data is no longer held
        except Exception as e:  # a result we cannot store is just not cached
            job.value = None
            self.cache.log(
                f"pass cache: the result of {job.describe} is not stored ({type(e).__name__}: {e})"
            )
            return
        with self._lock:
            job.tmp = tmp
            if self._abandoned:
                remove_tmp(job)
            elif job.committed:
                self._publish(job)

    def _put(self, digest: str, data: Any) -> None:
        """Make a blob present, once per run: the entries after the first that hold it
        (the weights, in every entry from export on) need not look at it again."""
        if digest not in self._present:
            self.cache.blobs.put(digest, data)
            self._present.add(digest)

    def _publish(self, job: Job) -> None:
        """Rename the written entry into place (the lock is held)."""
        if publish(self.cache, job):
            self.stored += 1


def write_entry(
    cache: PassCache,
    key: str,
    header: dict[str, Any],
    value: Any,
    put: Callable[[str, Any], None],
    digests: dict[int, tuple[Any, str]],
) -> Path:
    """Pickle ``value`` (None: a header-only entry), its blobs stored through ``put``,
    compress it and write the entry to a temporary file beside its final path."""
    payload = b""
    if value is not None:
        raw, sizes = blobs.dumps(value, put, digests, codec.shared(value))
        payload = zlib.compress(raw, 6)
        header = {**header, "blobs": sizes}
    return cache.write_tmp(key, header, payload)


def publish(cache: PassCache, job: Job) -> bool:
    """Rename ``job``'s written entry into place; True if it became visible (now)."""
    if job.done or job.tmp is None:
        return False
    try:
        os.replace(job.tmp, cache.path(job.key))
    except OSError as e:
        cache.log(f"pass cache: cannot store {job.key[:12]}: {e}")
        remove_tmp(job)
        return False
    job.done, job.tmp = True, None
    return True


def remove_tmp(job: Job) -> None:
    """Remove ``job``'s temporary file, if it has one."""
    if job.tmp is not None:
        with contextlib.suppress(OSError):
            job.tmp.unlink()
        job.tmp = None


def _close_all() -> None:
    """At process exit: the writers still open belong to runs that did not finish (a pass
    failed, or ^C): what is written and committed is visible already; the rest is dropped."""
    for writer in list(_LIVE):
        with contextlib.suppress(KeyboardInterrupt):
            writer.close(abandon=True, wait=2.0)


atexit.register(_close_all)
