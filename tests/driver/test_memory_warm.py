"""Where the memory goes (peak RSS per pass), and what a run keeps alive."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ._helpers import MODELS, WRONG, run

HOG = str(Path(__file__).with_name("memory_passes.py"))


def test_timing_and_report_show_which_pass_raised_the_peak(tmp_path):
    report = tmp_path / "r.json"
    argv = ["run", "--model", f"{MODELS}:mlp", "--passes", "export,hog-memory,noop-aten"]
    argv += ["--plugin", HOG, "--plugin", WRONG, "--timing", "--report", str(report)]
    # a fresh process: the peak of this one is whatever earlier tests left
    proc = subprocess.run(
        [sys.executable, "-m", "pteflow.driver", *argv], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "Peak RSS" in proc.stdout
    hog_line = next(ln for ln in proc.stdout.splitlines() if ln.endswith("hog-memory"))
    assert " MB (+" in hog_line
    passes = {p["name"]: p for p in json.loads(report.read_text())["passes"]}
    assert passes["hog-memory"]["peak_raised_mb"] >= 200
    assert passes["noop-aten"]["peak_raised_mb"] < 50
    assert passes["noop-aten"]["peak_rss_mb"] >= passes["hog-memory"]["peak_rss_mb"]
    assert passes["noop-aten"]["rss_mb"] < passes["noop-aten"]["peak_rss_mb"]
    memory = json.loads(report.read_text())["memory"]
    assert memory["peak_rss_mb"] >= passes["noop-aten"]["peak_rss_mb"]


@pytest.mark.parametrize("verify", ["--verify", "--no-verify"])
def test_no_second_copy_of_the_weights_while_lowering(tmp_path, verify):
    """The eager reference (verification, reproducers) is built again when read, not
    kept as a copy: during the passes only the program's own weights are alive. In a
    fresh interpreter: the pass counts every tensor of the shape alive in the process."""
    count = tmp_path / "count"
    pte = tmp_path / "m.pte"
    passes = f"export,count-weight-copies{{path={count}}},to-edge,to-executorch,emit"
    cmd = [sys.executable, "-m", "pteflow.driver", "run", "--passes", passes]
    cmd += ["--plugin", HOG, "-o", str(pte), verify, "--no-cache"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert count.read_text() == "2"  # tok_embeddings and output: no copy of either
    if verify == "--verify":
        assert "verify: max abs diff" in done.stdout and ": ok" in done.stdout


_NO_EXIR = """
import atexit, runpy, sys
sys.argv = ["driver", *sys.argv[2:]]
def _record():  # at exit: the driver leaves with os._exit after the atexit callbacks
    imported = sorted(
        m
        for m in sys.modules
        if m.startswith("executorch.exir") or m in ("torch._dynamo", "sympy")
    )
    with open(EXIR_FILE, "w") as f:
        f.write("\\n".join(imported))
atexit.register(_record)
runpy.run_module("pteflow.driver", run_name="__main__")
"""


@pytest.mark.slow
def test_an_unchanged_rerun_writes_the_cached_pte_without_the_compiler(capsys, tmp_path):
    """A full hit: the same bytes, no pass run, none of executorch.exir, torch._dynamo
    and sympy imported (the model is built on the meta device without initialising it:
    1.6 s of a 3.3 s warm run at stories; its dynamic dimension is an ``ir.dims.Dim``,
    made into torch's, whose bounds import sympy, only when read: 0.6 s), and the
    verdict of the first run reported as cached (a new tolerance verifies again)."""
    cache = tmp_path / "cache"
    passes = "export,to-edge,to-executorch,emit"
    argv = ["run", "--passes", passes, "--cache-dir", str(cache), "--verify"]
    code, out, err = run(capsys, *argv, "-o", str(tmp_path / "cold.pte"))
    assert code == 0, err
    assert "verified (cached)" not in out and ": ok" in out

    exir = tmp_path / "exir.txt"
    script = _NO_EXIR.replace("EXIR_FILE", repr(str(exir)))
    warm = tmp_path / "warm.pte"
    proc = subprocess.run(
        [sys.executable, "-c", script, "x", *argv, "-o", str(warm)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert exir.read_text() == ""  # nor the compiler, dynamo or sympy imported
    assert warm.read_bytes() == (tmp_path / "cold.pte").read_bytes()
    assert "full hit" in proc.stdout and "[verified (cached)]" in proc.stdout
    report = json.loads(warm.with_suffix(".report.json").read_text())
    assert report["verification"]["cached"] and report["cache"]["full_hit"]
    assert all(p["cached"] and p["wall_s"] == 0 for p in report["passes"])

    code, out, err = run(capsys, *argv, "--tol", "0.001", "-o", str(warm))
    assert code == 0, err
    assert "full hit" in out and "verified (cached)" not in out and ": ok" in out


@pytest.mark.parametrize("cache", ["--no-cache", "--cache"])
def test_the_checkpoint_pages_a_pass_read_are_not_kept_resident(tmp_path, cache):
    """A pass that reads the memory-mapped checkpoint (partitioning, the emitter) leaves
    its pages resident for the rest of the run unless they are handed back (at 135M's
    shapes the whole 621 MB file, through the peak); with the cache, hashing the model
    for the run's key reads them all before the first pass."""
    from pteflow.testing import write_random_checkpoint

    tiny = {"dim": 256, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 2048}
    params, checkpoint = write_random_checkpoint(tmp_path / "model", **tiny)
    resident = tmp_path / "resident"
    passes = f"export,read-weights,resident-file{{file={checkpoint},path={resident}}}"
    cmd = [sys.executable, "-m", "pteflow.driver", "run", "--passes", passes, "--plugin", HOG]
    cmd += ["--params", str(params), "--checkpoint", str(checkpoint), "--no-verify"]
    cmd += [cache] if cache == "--no-cache" else ["--cache-dir", str(tmp_path / "c")]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert checkpoint.stat().st_size > 8 * 2**20
    assert int(resident.read_text()) < 1024  # kB; read in full, 8 MB would stay


def test_the_collector_skips_what_was_alive_before_the_passes_and_only_then(tmp_path):
    """Full collections walk every object; those alive before the passes (the imports, the
    model) outlive the run, so the passes run with them frozen. The run ends with them
    given back (an API caller's objects are collected as before), and garbage made
    before the run was collected, not frozen."""
    import gc
    import weakref

    import pteflow

    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage  # type: ignore[attr-defined]
    gone = weakref.ref(garbage)
    del garbage
    count = tmp_path / "count"
    gc.disable()  # only the run's own collection may free the cycle
    try:
        result = pteflow.compile(
            f"{MODELS}:mlp",
            passes=f"export,frozen-count{{path={count}}}",
            plugins=[HOG],
            cache=False,
            verify=False,
        )
    finally:
        gc.enable()
    assert result.ok
    assert int(count.read_text()) > 10_000  # torch's objects, among others
    assert gc.get_freeze_count() == 0
    assert gone() is None
