"""A run resumed from what an interrupt leaves in the cache writes the .pte a fresh run writes.

An interrupt at a pass boundary leaves the entries of the passes before it (entries are
committed as each pass's claims are checked). For each such prefix, the next run resumes
from its last entry and must write the same bytes as the run that stored them, which
restored nothing (the reference; ``test_cache_cli`` compares a resumed run with
``--no-cache`` too). One cold run per pipeline, then one resume per boundary, in-process.

Boundaries: every one after export for xnnpack_default (earlier ones leave only EAGER
entries, which are keys: the resume is a fresh run; so is an entry a pass cheaper to run
again than to store left, ``passes/cache/worth.py``: the resume starts before it); for
xnnpack_8da4w, to save time,
only those after to-edge, where the EDGE and EXECUTORCH programs are restored (the
interrupt of issue 10 lost to-edge's kept-whole ops there).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pteflow.driver.cli import main

from ._helpers import ctrl_c_at_marker, run

#: pipeline -> the passes whose entry a resume may start after (None: any non-EAGER one)
BOUNDARIES = {
    "xnnpack_default": None,
    "xnnpack_8da4w": ("to-edge", "partition-xnnpack-dq", "convert-to-linear", "to-executorch"),
}


def _headers(cache_dir: Path) -> list[tuple[dict, Path]]:
    out = []
    for path in (cache_dir / "entries").glob("*/*.entry"):
        data = path.read_bytes()
        size = int.from_bytes(data[10:18], "big")
        out.append((json.loads(data[50 : 50 + size]), path))
    return out


def entries_in_run_order(cache_dir: Path) -> list[tuple[str, str, Path]]:
    """(pass name, level, path) of every pass entry, in the order the passes ran (the
    driver's full-run and verdict entries are not pass results: left out). The level of
    an entry that holds only its key is "KEY"."""
    rows = []
    for header, path in _headers(cache_dir):
        if header["pass"].startswith("driver: "):
            continue
        level = "KEY" if header.get("key_only") else header["level"]
        rows.append((header["created"], header["pass"].split("{")[0], level, path))
    return [(name, level, path) for _t, name, level, path in sorted(rows)]


def compile_run(out: Path, pipeline: str, cache_dir: Path | None) -> int:
    cache = ["--cache-dir", str(cache_dir)] if cache_dir else ["--no-cache"]
    return main(["run", "--pipeline", pipeline, "--no-verify", "-o", str(out), *cache])


@pytest.fixture(scope="module")
def _module_config(tmp_path_factory):
    return tmp_path_factory.mktemp("xdg-config-module")


@pytest.fixture(autouse=True)
def _one_key_for_the_module(_private_cache_dir, _module_config, monkeypatch):
    """One user's key for every run here, as a real user has: the cold runs' entries (made
    in whichever test first asked) must authenticate in later tests and their child
    processes. With a key per test, the interrupted run dropped them all and the test
    passed only if its own recomputed entries were written before the Ctrl-C."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(_module_config))


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """pipeline -> (the reference .pte bytes, a full cache directory), computed once."""
    done: dict[str, tuple[bytes, Path]] = {}

    def get(pipeline: str) -> tuple[bytes, Path]:
        if pipeline not in done:
            where = tmp_path_factory.mktemp(f"cold-{pipeline}")
            assert compile_run(where / "ref.pte", pipeline, where / "cache") == 0
            done[pipeline] = ((where / "ref.pte").read_bytes(), where / "cache")
        return done[pipeline]

    return get


def cut(full: Path, into: Path, keep: int) -> list[tuple[str, str, Path]]:
    """``into``: a copy of the cache ``full`` holding only its first ``keep`` entries."""
    if into.exists():
        shutil.rmtree(into)
    shutil.copytree(full, into)
    rows = entries_in_run_order(into)
    for _name, _level, path in rows[keep:]:
        path.unlink()
    for header, path in _headers(into):  # an interrupted run never stored its full run
        if header["pass"].startswith("driver: "):
            path.unlink()
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", sorted(BOUNDARIES))
def test_a_resume_from_every_interrupt_point_writes_the_same_pte(capsys, tmp_path, cold, pipeline):
    ref, full = cold(pipeline)
    rows = entries_in_run_order(full)
    wanted = BOUNDARIES[pipeline]
    checked = []
    for keep in range(1, len(rows) + 1):
        name, level, _ = rows[keep - 1]
        if level in ("EAGER", "KEY") or (wanted is not None and name not in wanted):
            continue
        cut(full, tmp_path / "cache", keep)
        _another_program_was_verified()
        out = tmp_path / f"after-{name}.pte"
        code, stdout, err = run(
            capsys, "run", "--pipeline", pipeline, "--no-verify", "-o", str(out),
            "--cache-dir", str(tmp_path / "cache"),
        )  # fmt: skip
        assert code == 0, f"resumed after {name}: {err}"
        assert f"cached: {keep} of" in stdout, stdout
        assert "failed on a restored program" not in err  # no retry was needed
        assert out.read_bytes() == ref, f"resumed after {name}: a different .pte"
        checked.append(name)
    assert "to-edge" in checked and "partition-xnnpack-dq" in checked


def _another_program_was_verified() -> None:
    """Define a default edge verifier, as a new process (or one that has compiled another
    program since) has: serde gives a restored program the verifier defined last, so a
    resume in this process would otherwise borrow the cold run's (which allows what
    to-edge kept whole) and hide a restore that lost it."""
    from executorch.exir.verification.verifier import EXIREdgeDialectVerifier

    EXIREdgeDialectVerifier(class_only=True)


#: the driver with XNNPACK's partitioner stopped at its start: it writes argv[1] (a
#: marker) and waits there, so the test's SIGINT lands inside partitioning, not at a guess
STOPPED_IN_PARTITION = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    def partition(self, program):
        Path(sys.argv[1]).write_text("partitioning")
        time.sleep(600)

    XnnpackPartitioner.partition = partition
    from pteflow.driver.cli import main

    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.slow
def test_sigint_during_partitioning_then_a_rerun_writes_the_same_pte(capsys, tmp_path, cold):
    """A real Ctrl-C while partition-xnnpack-dq runs; the run starts from to-edge's entry
    (copied from a cold run, to skip recomputing the passes before it)."""
    ref, full = cold("xnnpack_default")
    rows = cut(full, tmp_path / "cache", 0)
    keep = 1 + [name for name, _l, _p in rows].index("to-edge")
    cut(full, tmp_path / "cache", keep)
    out = tmp_path / "a.pte"
    argv = [sys.executable, "-m", "pteflow.driver", "run", "--pipeline", "xnnpack_default"]
    argv += ["--no-verify", "-o", str(out), "--cache-dir", str(tmp_path / "cache")]
    marker, script = tmp_path / "partitioning", tmp_path / "stopped.py"
    script.write_text(STOPPED_IN_PARTITION)
    code = ctrl_c_at_marker(
        [sys.executable, str(script), str(marker), *argv[3:]],
        marker,
        timeout=600,
        never="the run never reached the partitioner",
    )
    assert code != 0 and not out.exists()
    assert "fails authentication" not in (tmp_path / "partitioning.out").read_text()
    # the re-run, in a new process like the user's
    again = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"cached: {keep} of" in again.stdout
    assert "failed on a restored program" not in again.stderr
    assert out.read_bytes() == ref
