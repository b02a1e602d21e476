"""A reference run that dies (export_llama killed for memory at Llama-3.2-1B's shapes)
still states how far it got, and the benchmark's table shows what it can compare."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from benchmarks.bench_export import table
from benchmarks.reference import ReferenceFailedError, run_reference, write_checkpoint


def test_killed_reference_reports_its_peak(tmp_path):
    # Stands in for the interpreter export_llama runs under: takes ~200 MB, then is killed
    # the way the kernel's OOM killer kills (SIGKILL), whatever arguments it gets.
    python = tmp_path / "python"
    python.write_text(
        f"#!{sys.executable}\n"
        "import os, signal\n"
        "block = bytearray(200 * 2**20)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    params, ckpt = write_checkpoint(tmp_path / "ckpt", "tiny")
    with pytest.raises(ReferenceFailedError, match="exit code -9") as failed:
        run_reference("xnnpack_default", params, ckpt, tmp_path / "ref", python=str(python))
    assert failed.value.peak_rss_mb is not None and failed.value.peak_rss_mb >= 200


def test_table_marks_what_a_failed_reference_cannot_give():
    row = {
        "size": "llama3.2-1b",
        "pipeline": "xnnpack_default",
        "wall": None,
        "wall_nocache": None,
        "rss": 0.5,
        "rss_nocache": 0.48,
        "rss_bound": True,
        "pte_size": None,
        "decode": None,
        "cache_per_pte": 0.6,
        "abs": "export_llama failed at 20000 MB",
    }
    line = table([row]).splitlines()[-1]
    assert line.startswith("| llama3.2-1b | xnnpack_default | - | - | <= 0.50 | <= 0.48 | - | - |")


def test_a_repeated_reference_is_its_median_run(tmp_path):
    """``--reference-repeat``: export_llama N times, the ratio's reference is the run of
    the median wall (each run its own .pte), every wall recorded. The stand-in interpreter
    takes 0.9 s, 0.1 s, then 0.5 s, and writes the .pte export_llama would."""
    from benchmarks.bench_export import _median_run, runs_in_order

    count = tmp_path / "count"
    python = tmp_path / "python"
    python.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys, time\n"
        f"count = pathlib.Path({str(count)!r})\n"
        "n = int(count.read_text()) if count.exists() else 0\n"
        "count.write_text(str(n + 1))\n"
        "time.sleep((0.9, 0.1, 0.5)[n])\n"
        "a = sys.argv\n"
        "out = pathlib.Path(a[a.index('-o') + 1]) / (a[a.index('--output_name') + 1] + '.pte')\n"
        "out.write_bytes(str(n).encode())\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    params, ckpt = write_checkpoint(tmp_path / "ckpt", "tiny")
    model = (params, ckpt, None)
    runs, failed = runs_in_order(
        "xnnpack_default", tmp_path, model, 64, 0, 3, python=str(python)
    )  # no pteflow run: export_llama's three
    assert failed is None and len(runs["reference"]) == 3 and not runs["cache"]
    ref, walls = _median_run(runs["reference"], lambda r: r.wall_s)
    assert len(walls) == 3 and walls[0] > walls[2] > walls[1]
    assert ref.wall_s == pytest.approx(walls[2], abs=0.06)
    assert Path(ref.pte_path).read_text() == "2"  # the third run's own file


def test_an_even_count_takes_the_middle_run_against_pteflow():
    """Of two runs (or any even count's middle two), the median is the one that makes
    pteflow's ratio worse: the slower of pteflow's, the faster of export_llama's. The
    slower reference of two read stories default's wall 0.49 where the faster gave 0.63."""
    from benchmarks.bench_export import _median_run

    def wall(r: dict) -> float:
        return r["wall_s"]

    two = [{"wall_s": 71.2}, {"wall_s": 54.8}]
    four = [{"wall_s": w} for w in (40.0, 10.0, 30.0, 20.0)]
    assert _median_run(two, wall, reference=True) == (two[1], [71.2, 54.8])
    assert _median_run(two, wall)[0] is two[0]  # pteflow's: the slower
    assert _median_run(four, wall, reference=True)[0]["wall_s"] == 20.0
    assert _median_run(four, wall)[0]["wall_s"] == 30.0
    three = [{"wall_s": w} for w in (3.0, 1.0, 2.0)]  # odd: the one median either way
    assert _median_run(three, wall, reference=True)[0] is _median_run(three, wall)[0]


def test_the_flows_runs_are_interleaved_round_by_round():
    """A slower spell of the machine falls on export_llama and pteflow alike: one
    reference run, then a cache / no-cache pair (which first alternating), per round."""
    from benchmarks.bench_export import run_order

    ref, cache, bare = "reference", "cache", "no-cache"
    assert run_order(1, 1) == [ref, cache, bare]
    assert run_order(3, 3) == [ref, cache, bare, ref, bare, cache, ref, cache, bare]
    assert run_order(3, 1) == [ref, cache, bare, bare, cache, cache, bare]
    assert run_order(1, 2) == [ref, cache, bare, ref]
