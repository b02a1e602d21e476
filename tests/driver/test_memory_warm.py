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
def test_no_second_copy_of_the_weights_while_lowering(capsys, tmp_path, verify):
    """The eager reference (verification, reproducers) is built again when read, not
    kept as a copy: during the passes only the program's own weights are alive."""
    count = tmp_path / "count"
    pte = tmp_path / "m.pte"
    code, out, err = run(
        capsys,
        "run",
        "--passes",
        f"export,count-weight-copies{{path={count}}},to-edge,to-executorch,emit",
        "--plugin",
        HOG,
        "-o",
        str(pte),
        verify,
        "--no-cache",
    )
    assert code == 0, err
    assert count.read_text() == "2"  # tok_embeddings and output: no copy of either
    if verify == "--verify":
        assert "verify: max abs diff" in out and ": ok" in out
