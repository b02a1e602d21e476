"""Running ExecuTorch's operator suite for ``benchmarks/conformance.py``: pytest processes
with ``tests.conformance.plugin``, a chunk of modules each, ``jobs`` at a time, their JSON
lines folded into one results file that an interrupted run can resume from."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.conformance.flows import FLOWS, twin

ROOT = Path(__file__).resolve().parents[1]

#: modules per pytest process: a native crash loses one chunk, not the run
CHUNK = 28


def suite_dir() -> Path:
    """The installed suite's operator tests (found without importing executorch)."""
    import importlib.util

    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("executorch is not installed in this Python")
    return Path(next(iter(spec.submodule_search_locations))) / "backends/test/suite/operators"


def all_modules() -> list[str]:
    return sorted(p.stem.removeprefix("test_") for p in suite_dir().glob("test_*.py"))


def check_selection(flows: Sequence[str], modules: Sequence[str]) -> None:
    """Raise ValueError for an unknown flow or operator module (before anything runs)."""
    unknown = [f for f in flows if f not in FLOWS]
    if unknown:
        raise ValueError(f"unknown flow(s) {', '.join(unknown)}; one of {', '.join(FLOWS)}")
    where = suite_dir()
    missing = [m for m in modules if not (where / f"test_{m}.py").exists()]
    if missing:
        import difflib

        near = difflib.get_close_matches(missing[0], all_modules(), n=3)
        hint = f" (closest: {', '.join(near)})" if near else ""
        raise ValueError(f"no operator module(s) {', '.join(missing)} in {where}{hint}")


def run_suite(
    flows: Sequence[str],
    modules: Sequence[str],
    results: Path,
    *,
    timeout: float | None = None,
    log: Path | None = None,
    jobs: int = 1,
) -> list[dict]:
    """Run ``modules`` for the pteflow ``flows`` and their twins; the plugin's JSON lines.

    The modules go in chunks, one pytest process each, ``jobs`` at a time. Each chunk
    writes its own part file (``results``'s name + ``.partN``); a finished chunk's lines
    are appended to ``results`` in module order (``fold_parts``), so an interrupted run
    leaves whole modules for ``--resume`` (which folds them before calling this; part
    files found here are stale and removed).

    Raises:
        ValueError: an unknown flow or module (before anything runs).

    Tests of a chunk whose pytest process died (a native crash) before reporting them are
    missing from its results: they are added as failed ("the pytest process died").
    """
    from concurrent.futures import ThreadPoolExecutor

    check_selection(flows, modules)
    for stale in results.parent.glob(f"{results.name}.part*"):  # --resume folded them first
        stale.unlink()
    size = CHUNK if jobs <= 1 else max(1, min(CHUNK, len(modules) // (jobs * 3)))
    chunks = [modules[start : start + size] for start in range(0, len(modules), size)]
    running = _Children()
    pool = ThreadPoolExecutor(max(1, jobs))
    try:
        futures = [
            pool.submit(_run_chunk, chunk, _part(results, i), flows, timeout, log, running)
            for i, chunk in enumerate(chunks)
        ]
        for future in futures:
            future.result()
    except BaseException:  # ^C, SIGTERM (main): stop the chunks; their parts stay unfinished
        running.stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    fold_parts(results, flows)
    return _read(results)


class _Children:
    """The pytest processes running now; ``stop`` interrupts them and starts no more."""

    def __init__(self) -> None:
        self.stopped = False
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def start(self, cmd: list[str], out: Any) -> subprocess.Popen | None:
        with self._lock:
            if self.stopped:
                return None
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            self._procs.add(proc)
            return proc

    def wait(self, proc: subprocess.Popen) -> int:
        code = proc.wait()
        with self._lock:
            self._procs.discard(proc)
        return code

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            procs = list(self._procs)
        for proc in procs:  # the finished tests' lines are in its part already
            with contextlib.suppress(OSError):
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _part(results: Path, index: int) -> Path:
    return results.with_name(f"{results.name}.part{index:03d}")


#: exit codes of a pytest process that did not finish because it was stopped, not crashed
_STOPPED = (2, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL)


def _run_chunk(
    chunk: Sequence[str],
    part: Path,
    flows: Sequence[str],
    timeout: float | None,
    log: Path | None,
    running: _Children,
) -> None:
    where = suite_dir()
    # every flow of a module before the next module: an interrupted run has whole modules
    marks = " or ".join(f"flow_{n}" for f in flows for n in (f, twin(f)))
    cmd = [
        sys.executable, "-m", "pytest", "-p", "tests.conformance.plugin",
        "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
        "-p", "no:cacheprovider", "-q", "-m", marks,
        "--conformance-results", str(part),
        *([f"--conformance-timeout={timeout}"] if timeout else []),
        *(str(where / f"test_{m}.py") for m in chunk),
    ]  # fmt: skip
    part.unlink(missing_ok=True)
    with open(log or os.devnull, "a") as out:
        proc = running.start(cmd, out)
        if proc is None:
            return
        code = running.wait(proc)
    ended = chunk_ended(code, running.stopped)
    if ended == "stopped":  # unfinished: resume keeps its whole modules
        return
    if ended == "crashed":
        _record_crash(part, chunk, flows, code)
    if part.exists():  # finished: every module in it is whole
        part.rename(part.with_name(part.name + ".done"))


def chunk_ended(code: int, stopped: bool) -> str:
    """How a chunk's pytest process ended: "finished" (0, 1: tests failed, 5: none
    selected), "stopped" (interrupted or terminated: not a result) or "crashed"."""
    if stopped or code in _STOPPED:
        return "stopped"
    return "finished" if code in (0, 1, 5) else "crashed"


def fold_parts(results: Path, flows: Sequence[str]) -> None:
    """Append the chunks' part files to ``results`` in chunk order and remove them. A part
    whose chunk did not finish (no ``.done``) keeps only its whole modules."""
    parts = sorted(results.parent.glob(f"{results.name}.part*"))
    if not parts:
        return
    with open(results, "a") as f:
        for part in parts:
            if not part.name.endswith(".done"):
                done_modules(part, flows)  # trims the module it was in the middle of
            f.writelines(json.dumps(r) + "\n" for r in _read(part))
    for part in parts:
        part.unlink()


def done_modules(results: Path, flows: Sequence[str]) -> list[str]:
    """Modules ``results`` has every flow of, but the last one (it may be incomplete).

    Rewrites ``results`` without the lines of the modules it does not count as done.
    """
    lines = _read(results)
    if not lines:
        return []
    module = [r["test"].split("::")[0].removeprefix("operators/test_")[:-3] for r in lines]
    wanted = {n for f in flows for n in (f, twin(f))}
    have: dict[str, set] = {}
    for m, r in zip(module, lines, strict=True):
        have.setdefault(m, set()).add(r["flow"])
    done = [m for m in dict.fromkeys(module[:-1]) if m != module[-1] and have[m] >= wanted]
    keep = [r for m, r in zip(module, lines, strict=True) if m in done]
    results.write_text("".join(json.dumps(r) + "\n" for r in keep))
    return done


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _record_crash(part: Path, chunk: Sequence[str], flows, code: int) -> None:
    """One failed line per flow of the chunk's module that had no result when it died."""
    seen = {(r["test"].split("::")[0], r["flow"]) for r in _read(part)}
    with open(part, "a") as f:
        for m in chunk:
            for flow in (n for p in flows for n in (p, twin(p))):
                if (f"operators/test_{m}.py", flow) not in seen:
                    line = {"test": f"operators/test_{m}.py::(process died)", "flow": flow,
                            "outcome": "failed", "detail": f"the pytest process died (exit {code})",
                            "seconds": 0.0}  # fmt: skip
                    f.write(json.dumps(line) + "\n")
