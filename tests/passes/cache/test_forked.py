"""The forked writer (``passes/cache/forked.py``): each result is encoded and written by
a child forked when its pass returns, so the run does none of it. What it guarantees:
the entry is the program as the pass returned it (not as a later pass left it), a child
that fails or is stopped leaves no file behind and nothing visible, and the parent holds
no reference to the program it handed over. The small MLP through XNNPACK
(``test_cache.py``'s pipeline); the writers' shared guarantees are in test_blobs.py,
test_store_cost.py and test_graph_trees.py, run with both."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from pteflow.ir import Level
from pteflow.passes.cache import PassCache, codec
from pteflow.passes.cache.forked import ForkedWriter, writer_for
from pteflow.passes.cache.writer import Job, Writer

from .test_cache import cached, load_local_pass, run
from .test_integrity import entries_by_pass

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*.tmp")]


def test_the_entry_is_the_program_as_its_pass_returned_it(tmp_path, monkeypatch):
    """The child encodes a snapshot: scale-output edits export's graph in place right
    after export returned it (while export's child may still be running), and export's
    entry still holds the graph without the edit: a resume from it scales once."""
    monkeypatch.setenv("PTEFLOW_CACHE_WRITER", "fork")
    # (scale-output's own result is not stored: its outputs are not in the signature)
    cache = PassCache(tmp_path / "cache", log=lambda m: None)
    try:
        scale = load_local_pass(tmp_path, 2.0)
        first, pte1 = run(cache, tmp_path / "a.pte", [scale()])
        order = [r.name for r in first.records]
        assert order.index("export") + 1 == order.index("scale-output")
        by_pass = entries_by_pass(cache)
        for name in order[order.index("scale-output") :]:
            if name in by_pass:
                by_pass[name].unlink()
        second, pte2 = run(cache, tmp_path / "b.pte", [scale()])
    finally:
        sys.modules.pop("local_scale_pass", None)
    assert cached(second)["export"] and not cached(second)["scale-output"]
    assert pte2 == pte1
    _fresh, pte3 = run(None, tmp_path / "c.pte", [scale()])
    assert pte3 == pte1


def test_a_child_that_fails_stores_nothing_and_the_run_goes_on(tmp_path, monkeypatch):
    """An EDGE result that cannot be encoded (here: the encoder raises in the child) is not
    stored, with the child's reason in the log; the other entries are, the .pte is right."""
    monkeypatch.setenv("PTEFLOW_CACHE_WRITER", "fork")
    real = codec.encode

    def fails_on_edge(program, *texts):
        if program.level == Level.EDGE:
            raise RuntimeError("cannot encode this one")
        return real(program, *texts)

    monkeypatch.setattr(codec, "encode", fails_on_edge)
    messages: list[str] = []
    cache = PassCache(tmp_path / "cache", log=messages.append)
    _result, pte1 = run(cache, tmp_path / "a.pte")
    assert any("is not stored (RuntimeError: cannot encode this one)" in m for m in messages)
    by_pass = entries_by_pass(cache)
    assert "export" in by_pass and "to-executorch" in by_pass
    assert "to-edge" not in by_pass and "partition-xnnpack" not in by_pass
    assert not leftovers(tmp_path / "cache")
    monkeypatch.setattr(codec, "encode", real)
    _again, pte2 = run(PassCache(tmp_path / "cache", log=pytest.fail), tmp_path / "b.pte")
    assert pte2 == pte1


def _slow_encode(seconds: float):
    def encode():
        time.sleep(seconds)
        return {"never": "written"}

    return encode


@pytest.mark.parametrize("wait", [0.0, 5.0])
def test_abandoning_stops_the_child_and_leaves_no_file(tmp_path, wait):
    """A run that did not finish (^C, a failed pass) abandons its writer: the child
    storing a result is terminated (SIGTERM: it removes its own temporary files; after
    ``wait`` seconds SIGKILL, and the parent removes them) and nothing becomes visible."""
    cache = PassCache(tmp_path / "cache", log=pytest.fail)
    writer = ForkedWriter(cache)
    job = Job("ab" * 32, {"pass": "p"}, None, "p", encode=_slow_encode(60))
    writer.submit(job)
    assert job.encode is None  # the parent does not hold the program
    pid = writer._child.pid
    writer.commit([job])
    t0 = time.monotonic()
    writer.close(abandon=True, wait=wait)
    assert time.monotonic() - t0 < 30
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped: no zombie left
    assert not cache.path(job.key).exists() and not leftovers(tmp_path / "cache")


def test_one_child_at_a_time_and_committed_entries_become_visible(tmp_path):
    """A second result waits for the first's child; an entry is visible only once its
    child has written it and the session committed it."""
    cache = PassCache(tmp_path / "cache", log=pytest.fail)
    writer = ForkedWriter(cache)
    first = Job("aa" * 32, {"pass": "one"}, None, "one", encode=_slow_encode(0.5))
    second = Job("bb" * 32, {"pass": "two"}, None, "two", encode=lambda: {"x": 1})
    writer.submit(first)
    t0 = time.monotonic()
    writer.submit(second)  # forked only once the first child has exited
    assert time.monotonic() - t0 >= 0.3
    assert first.tmp is not None and first.encode_s is not None and first.encode_s >= 0.5
    assert not cache.path(first.key).exists()  # written, not committed
    writer.commit([first])
    assert cache.path(first.key).exists()
    writer.close()  # the second: written, never committed
    assert not cache.path(second.key).exists() and not leftovers(tmp_path / "cache")
    header, _payload = cache.read(first.key)
    assert header["pass"] == "one" and writer.stored == 1


def test_the_thread_writer_stores_where_forking_does_not_work(tmp_path, monkeypatch):
    """Off the main thread (a child's signal handling needs it) and with
    PTEFLOW_CACHE_WRITER=thread the thread writer is used."""
    cache = PassCache(tmp_path / "cache", log=pytest.fail)
    monkeypatch.setenv("PTEFLOW_CACHE_WRITER", "fork")
    made: list = []
    t = threading.Thread(target=lambda: made.append(writer_for(cache)))
    t.start()
    t.join()
    made[0].close()
    main = writer_for(cache)
    assert type(made[0]) is Writer and type(main) is ForkedWriter
    main.close()
    monkeypatch.setenv("PTEFLOW_CACHE_WRITER", "thread")
    other = writer_for(cache)
    assert type(other) is Writer
    other.close()


def test_when_no_child_can_be_forked_the_result_is_stored_here(tmp_path, monkeypatch):
    """fork() failing (ENOMEM, EAGAIN: a process limit) stores on the main thread, with a
    warning; the entries restore the same .pte."""
    import errno

    monkeypatch.setenv("PTEFLOW_CACHE_WRITER", "fork")

    def no_fork():
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    real = os.fork
    monkeypatch.setattr(os, "fork", no_fork)
    messages: list[str] = []
    cache = PassCache(tmp_path / "cache", log=messages.append)
    _first, pte1 = run(cache, tmp_path / "a.pte")
    assert messages and all("cannot fork a writer" in m for m in messages)
    assert "to-edge" in entries_by_pass(cache) and not leftovers(tmp_path / "cache")
    monkeypatch.setattr(os, "fork", real)
    second, pte2 = run(PassCache(tmp_path / "cache", log=pytest.fail), tmp_path / "b.pte")
    assert cached(second)["to-executorch"] and pte2 == pte1  # (emit always runs)
