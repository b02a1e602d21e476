"""The forked writer: each pass result is serialized and written by a child process
forked when the pass returns, so none of it is on the run's critical path.

The thread writer (``writer.py``) could move pickling, hashing and writing off the main
thread, but not the graph serialization (``codec.encode``): a later pass may edit the
graph in place, so it had to be done before the next pass, and it is pure Python, so a
thread would only take turns with the passes for the GIL. A forked child holds the
program as it was when the pass returned (the pages are shared copy-on-write) for as
long as it needs: it encodes, stores the blobs, writes the entry to a temporary file,
reports what it did on a pipe and exits. The parent goes straight on to the next pass.

- One child at a time: the next result's child is forked once the previous one has
  exited (waited for only when it is still running then). So the blobs one child put
  are known to the next (``put`` in its report: each blob is put once a run), at most
  one snapshot is alive beside the run, and one core is left to the passes.
- An entry becomes visible (renamed into place, by the parent) once its child reported
  it written and the session committed it, whichever comes last, as with the thread
  writer. Header-only entries (aliases, keys) are written by the parent itself.
- A child ignores SIGINT (the terminal sends it to the whole process group: the parent
  decides) and turns SIGTERM into an exit that removes its temporary files. Abandoning
  the writer (a pass failed, ^C, process exit) terminates the running child, kills it if
  it has not exited within ``wait`` seconds, and removes whatever temporary file it or
  an uncommitted entry left: nothing half-written, nothing uncommitted visible.
- A child's digests of the byte strings its program held (delegate payloads, named data:
  ``job.held``, which the parent holds until the report) come back in its report and go
  into ``cache.digests``: the next children and the run's full-run entry do not hash the
  same payload again (the to-executorch child and the driver re-hashed every delegate
  payload the partition child had: ~1 s at 135M parameters, most of it on the critical
  path). Tensors' digests need no such thing: the parent took the weights' for the keys.
- A child runs no thread and no atexit handler (``os._exit``); torch computes on one
  thread in it (the parent's OpenMP pool does not exist in the child).

Used on Linux, from the main thread, unless ``PTEFLOW_CACHE_WRITER=thread``
(``writer_for``); elsewhere the thread writer stores the same entries.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .writer import _LIVE, Job, Writer, publish, remove_tmp, write_entry

if TYPE_CHECKING:
    from .store import PassCache

#: ``PTEFLOW_CACHE_WRITER``: ``fork`` (the default where it works) or ``thread``.
WRITER_ENV = "PTEFLOW_CACHE_WRITER"
#: A child still running after this long is stuck (a lock another thread held at the
#: fork): it exits, its result is not stored, and the run goes on.
HANG_S = 1800.0


def forking_works() -> bool:
    """Whether this process can store through forked children: Linux (fork is how it
    starts processes; macOS frameworks refuse to run in a forked child), on the main
    thread (the child's signal handling), and not turned off."""
    return (
        sys.platform == "linux"
        and hasattr(os, "fork")
        and threading.current_thread() is threading.main_thread()
        and os.environ.get(WRITER_ENV, "fork") != "thread"
    )


def writer_for(cache: PassCache) -> Writer | ForkedWriter:
    return ForkedWriter(cache) if forking_works() else Writer(cache)


class _Child:
    """A running child: its pid, the read end of its report pipe, what it said so far."""

    def __init__(self, pid: int, fd: int, job: Job):
        self.pid, self.fd, self.job = pid, fd, job
        self.started = time.monotonic()
        self.data = b""
        self.status: int | None = None

    def poll(self, timeout: float | None) -> bool:
        """Read its report until it closes the pipe (exits), for at most ``timeout``
        seconds (None: until then); then reap it. True once it has exited."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.fd >= 0:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return False
            chunk = os.read(self.fd, 1 << 16)
            if chunk:
                self.data += chunk
            else:
                os.close(self.fd)
                self.fd = -1
        if self.status is None:  # it closed the pipe: it is exiting
            _, status = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(status)
        return True

    def report(self) -> dict[str, Any]:
        try:
            out = json.loads(self.data or b"{}")
        except ValueError:
            out = {}
        if self.status != 0 and "error" not in out:
            out["error"] = f"its process ended with status {self.status}"
        return out


class ForkedWriter:
    """One session's children, one at a time; the interface of ``writer.Writer``."""

    snapshots = True  # ``submit`` takes the program's encoder, run in the child

    def __init__(self, cache: PassCache):
        self.cache = cache
        self.write_s = 0.0  # the children's wall time
        self.stored = 0
        self.puts: list[str] = []  # blobs the children put, in order (each once a run)
        self._present: set[str] = set()
        self._jobs: list[Job] = []
        self._child: _Child | None = None
        self._closed = False
        _LIVE.add(self)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- the session's side

    def submit(self, job: Job) -> None:
        """Fork the child that stores ``job`` (``job.encode`` makes its value), or write
        a header-only job now."""
        self._jobs.append(job)
        if job.encode is None:
            self._store_here(job)
            return
        self._reap(None)  # one child at a time
        encode, job.encode = job.encode, None  # the parent keeps no reference to it
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError as e:  # no memory or process left for a child: store it here
            os.close(read)
            os.close(write)
            self._store_without_child(job, encode, e)
            return
        if pid == 0:  # the child: never returns
            os.close(read)
            _run_child(self, job, encode, write)
        os.close(write)
        self._child = _Child(pid, read, job)

    def collect(self) -> None:
        """Take the report of a child that has exited, without waiting."""
        self._reap(0.0)

    def busy_s(self) -> float:
        """How long the running child has been running (0: none is)."""
        return time.monotonic() - self._child.started if self._child is not None else 0.0

    def commit(self, jobs: list[Job]) -> None:
        for job in jobs:
            job.committed = True
        self._reap(0.0)
        for job in jobs:
            self._publish(job)

    def close(self, *, abandon: bool = False, wait: float | None = None) -> None:
        """Wait for the running child (``abandon``: terminate it), publish what is
        committed and written, remove every other temporary file."""
        if abandon:
            self._terminate(2.0 if wait is None else wait)
            self.cache.forget_held()  # no full-run entry follows: let the payloads go
        else:
            self._reap(None)
        self._closed = True
        for job in self._jobs:
            self._publish(job)  # committed and written (never the terminated child's)
            if not job.done:
                remove_tmp(job)
            job.value = job.encode = job.held = job.delegates = None
        _LIVE.discard(self)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- the parent's work

    def _store_here(self, job: Job) -> None:
        try:
            job.tmp = self.cache.write_tmp(job.key, job.header, b"")
        except Exception as e:
            self.cache.log(f"pass cache: cannot store {job.key[:12]}: {e}")

    def _store_without_child(self, job: Job, encode: Callable[[], Any], why: OSError) -> None:
        self.cache.log(f"pass cache: cannot fork a writer ({why}); storing on the main thread")
        try:
            report = _store(self, job, encode)
        except Exception as e:
            report = {"error": f"{type(e).__name__}: {e}"}
        self._take(job, report, os.getpid())

    def _reap(self, timeout: float | None) -> None:
        """Take the running child's report once it has exited (waiting ``timeout``)."""
        child = self._child
        if child is None or not child.poll(timeout):
            return
        self._child = None
        self._take(child.job, child.report(), child.pid)

    def _take(self, job: Job, report: dict[str, Any], pid: int) -> None:
        """What storing ``job`` reported: its entry's temporary file and blobs put, or
        why it is not stored."""
        self.write_s += float(report.get("wall_s") or 0.0)
        job.encode_s = report.get("encode_s")
        digests = report.get("digests") or {}
        for data in job.held or ():  # held since the fork: their ids are theirs still
            digest = digests.get(str(id(data)))
            if isinstance(digest, str):
                self.cache.digests[id(data)] = (data, digest)
        job.held = None
        self.cache.delegate_texts.adopt(job.delegates or (), report.get("texts"))
        job.delegates = None
        if "error" in report or "tmp" not in report:
            if pid != os.getpid():
                _remove_leftovers(self.cache, job, pid)
            why = report.get("error", "no report")
            self.cache.log(f"pass cache: the result of {job.describe} is not stored ({why})")
            return
        for digest in report.get("put", ()):
            if digest not in self._present:
                self._present.add(digest)
                self.puts.append(digest)
        job.tmp = Path(report["tmp"])
        if self._closed:
            remove_tmp(job)
        else:
            self._publish(job)  # if it was committed already

    def _publish(self, job: Job) -> None:
        if job.committed and publish(self.cache, job):
            self.stored += 1

    def _terminate(self, wait: float) -> None:
        child = self._child
        if child is None:
            return
        self._child = None
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGTERM)
        if not child.poll(wait):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
            child.poll(None)
        _remove_leftovers(self.cache, child.job, child.pid)


def _remove_leftovers(cache: PassCache, job: Job, pid: int) -> None:
    """The temporary files a child that did not finish may have left (named by its pid)."""
    dirs = [cache.path(job.key).parent]
    if cache.blobs.directory.is_dir():
        dirs += [d for d in cache.blobs.directory.iterdir() if d.is_dir()]
    for d in dirs:
        for tmp in d.glob(f".*.{pid}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


# -------------------------------------------------------------------- the child


def _run_child(writer: ForkedWriter, job: Job, encode: Callable[[], Any], fd: int) -> None:
    """Store ``job`` and report on ``fd``; exit without running anything else."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        _quiet()
        gc.disable()  # short-lived: collecting would only copy the parent's pages
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(1)
        report = _store(writer, job, encode)
        code = 0
    except BaseException as e:  # reported, never raised: the parent's code must not run
        report = {"error": f"{type(e).__name__}: {e}"}
    try:
        data = json.dumps(report).encode()
        while data:  # the parent reads it as it comes (a long list of blobs put)
            data = data[os.write(fd, data) :]
        os.close(fd)
    finally:
        os._exit(code)


def _quiet() -> None:
    """The child says nothing: the run's streams and warning handlers are the parent's,
    and another thread of the parent may have held a stream's lock when it forked (the
    lock stays held in the child). A child that hangs anyway exits after ``HANG_S``."""
    import faulthandler
    import logging
    import warnings

    sink = open(os.devnull, "w")  # noqa: SIM115 (the child's until it exits)
    sys.stdout = sys.stderr = sink
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    faulthandler.dump_traceback_later(HANG_S, exit=True, file=sink)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"terminated (signal {signum})")


def _store(writer: ForkedWriter, job: Job, encode: Callable[[], Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    value = encode()
    encode_s = time.perf_counter() - t0
    put: list[str] = []
    present = set(writer._present)  # (the parent's own, when it stores without a child)

    def put_once(digest: str, data: Any) -> None:
        if digest not in present:
            writer.cache.blobs.put(digest, data)
            present.add(digest)
            put.append(digest)

    known = writer.cache.digests  # (the child's copy; the parent's own without a child)
    tmp = write_entry(writer.cache, job.key, job.header, value, put_once, known)
    texts = None  # for the next children; the entry is whole without them
    with contextlib.suppress(OSError):
        texts = writer.cache.delegate_texts.write(tmp.parent)
    wall = time.perf_counter() - t0
    digests = {
        str(id(data)): known[id(data)][1]
        for data in job.held or ()
        if id(data) in known and known[id(data)][0] is data
    }
    return {
        "tmp": str(tmp),
        "put": put,
        "digests": digests,
        "texts": texts,
        "encode_s": encode_s,
        "wall_s": wall,
    }
