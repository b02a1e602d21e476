"""``driver run`` with the pass cache, and ``driver cache info|clear``."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._helpers import MODELS, run

PASSES = (
    "export,to-edge{check_ir_validity=false},partition-xnnpack,convert-to-linear,to-executorch,emit"
)


def compile_mlp(capsys, tmp_path: Path, name: str, *extra: str) -> tuple[int, str, str]:
    return run(
        capsys,
        "run",
        "--model",
        f"{MODELS}:mlp",
        "--passes",
        PASSES,
        "-o",
        str(tmp_path / name),
        *extra,
    )


def test_second_run_is_cached_identical_and_reported(capsys, tmp_path):
    cache_dir = str(tmp_path / "cache")
    code, out, err = compile_mlp(capsys, tmp_path, "a.pte", "--cache-dir", cache_dir)
    assert code == 0, err
    assert "(cached)" not in out
    code, out, err = compile_mlp(capsys, tmp_path, "b.pte", "--cache-dir", cache_dir, "-v")
    assert code == 0, err
    assert (tmp_path / "a.pte").read_bytes() == (tmp_path / "b.pte").read_bytes()
    # an unchanged re-run is a full hit: the .pte is restored, no pass runs (driver/warm.py)
    assert "cached: 6 of 6 passes restored from the pass cache" in out and "full hit" in out
    table = [ln.split() for ln in out.splitlines() if ln.startswith(("export", "emit"))]
    assert table[0][-1] == "cached" and table[-1][-1] == "cached"
    report = json.loads((tmp_path / "b.report.json").read_text())
    assert [p["cached"] for p in report["passes"]] == [True] * 6

    code, out, _ = run(capsys, "cache", "info", "--cache-dir", cache_dir)
    assert code == 0
    # 5 pass results, the full run and its verdict
    assert "entries: 7" in out and "total size:" in out
    assert "hit rate 100% (6 of 6 cacheable passes restored" in out
    code, out, _ = run(capsys, "cache", "clear", "--cache-dir", cache_dir)
    assert code == 0 and "removed 7 entries" in out
    code, out, _ = run(capsys, "cache", "info", "--cache-dir", cache_dir)
    assert "entries: 0" in out and "last run: none recorded" in out


def test_no_cache_neither_reads_nor_writes(capsys, tmp_path):
    cache_dir = tmp_path / "cache"
    code, _out, err = compile_mlp(
        capsys, tmp_path, "a.pte", "--cache-dir", str(cache_dir), "--no-cache"
    )
    assert code == 0, err
    assert not cache_dir.exists()


def test_default_cache_dir_follows_xdg(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    code, out, _ = run(capsys, "cache", "info")
    assert code == 0 and f"cache: {tmp_path / 'xdg' / 'pteflow'}" in out


def test_unwritable_cache_dir_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _out, err = compile_mlp(capsys, tmp_path, "a.pte", "--cache-dir", str(blocker))
    assert code == 2
    assert err.count("\n") == 1 and "is not writable" in err and "--no-cache" in err


def test_bad_cache_size_is_one_line(capsys, tmp_path):
    code, _out, err = run(capsys, "cache", "info", "--cache-size", "lots")
    assert code == 2 and err.count("\n") == 1 and "not a size" in err


@pytest.mark.slow
def test_two_concurrent_runs_share_a_cache_dir(tmp_path):
    """Both succeed and write the same bytes; neither reads the other's half-written entry."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def start(name: str) -> subprocess.Popen:
        cmd = [
            sys.executable,
            "-m",
            "pteflow.driver",
            "run",
            "--model",
            f"{MODELS}:mlp",
            "--passes",
            PASSES,
            "-o",
            str(tmp_path / name),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-verify",
        ]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    procs = [start("a.pte"), start("b.pte")]
    outs = [p.communicate(timeout=600)[0].decode() for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out
        assert "driver: warning" not in out, out  # (upstream ones are in the log)
    assert (tmp_path / "a.pte").read_bytes() == (tmp_path / "b.pte").read_bytes()
    # and a third run reuses what they stored
    third = start("c.pte")
    out = third.communicate(timeout=600)[0].decode()
    assert third.returncode == 0, out
    assert "cached: 6 of 6 passes" in out and "full hit" in out  # the same run: a full hit
    assert (tmp_path / "c.pte").read_bytes() == (tmp_path / "a.pte").read_bytes()


@pytest.mark.slow
@pytest.mark.usefixtures("every_result_stored")  # the first, in-process run stores
def test_tiny_llama_resumes_from_a_restored_edge_program_in_a_new_process(capsys, tmp_path):
    """The EDGE entry (custom SDPA op, XNNPACK delegates) round-trips through serde: a new
    process that resumes from it writes exactly what a run without the cache writes."""
    cache_dir = str(tmp_path / "cache")
    common = ["run", "--pipeline", "xnnpack_default", "--no-verify"]
    code, _out, err = run(capsys, *common, "-o", str(tmp_path / "a.pte"), "--cache-dir", cache_dir)
    assert code == 0, err
    change = ["--set", "to-executorch.const_prop=false"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pteflow.driver",
            *common,
            *change,
            "-o",
            str(tmp_path / "b.pte"),
            "--cache-dir",
            cache_dir,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cached: 7 of 9 passes restored" in proc.stdout
    code, _out, err = run(capsys, *common, *change, "-o", str(tmp_path / "c.pte"), "--no-cache")
    assert code == 0, err
    assert (tmp_path / "b.pte").read_bytes() == (tmp_path / "c.pte").read_bytes()


def test_observers_that_need_every_pass_run_every_pass(capsys, tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    code, _, err = compile_mlp(capsys, tmp_path, "a.pte", *cache)
    assert code == 0, err
    dumps = tmp_path / "dumps"
    code, out, err = compile_mlp(
        capsys, tmp_path, "b.pte", *cache, "--dump-dir", str(dumps), "--track-numerics"
    )
    assert code == 0, err
    assert "cache: not used (--dump-dir, --track-numerics must see every pass run)" in out
    assert "(cached)" not in out
    assert len(list(dumps.glob("*.txt"))) == 1 + len(PASSES.split(","))  # input + every pass
    report = json.loads((tmp_path / "b.report.json").read_text())
    assert not any(p["cached"] for p in report["passes"])
    assert len(report["numerics"]) >= len(PASSES.split(","))


def test_cached_rows_take_no_time_and_their_op_counts_chain(capsys, tmp_path):
    cache = ["--cache-dir", str(tmp_path / "cache")]
    code, _, err = compile_mlp(capsys, tmp_path, "a.pte", *cache)
    assert code == 0, err
    code, out, err = compile_mlp(capsys, tmp_path, "b.pte", *cache)
    assert code == 0, err
    report = json.loads((tmp_path / "b.report.json").read_text())
    rows = report["passes"]
    assert [r["wall_s"] for r in rows if r["cached"]] == [0.0] * 6  # a full hit
    for a, b in itertools.pairwise(rows):
        assert a["ops_after"] == b["ops_before"], (a["name"], b["name"])
    # the time the cache took is its own figure, counted in the total
    assert report["cache"]["hits"] == 6 and report["cache"]["load_s"] > 0
    assert "pass cache: load" in out
