"""``driver inspect``: the numbers it prints, on the .pte of every named pipeline built here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pteflow.driver.cli import main
from pteflow.driver.inspect import inspect_pte

from ._helpers import run

PIPELINES = ("xnnpack_default", "xnnpack_8da4w", "xnnpack_pt2e", "portable_default")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name in PIPELINES:
        pte = tmp_path_factory.mktemp(name) / f"{name}.pte"
        argv = ["run", "--pipeline", name, "-o", str(pte), "--no-cache", "--no-verify", "-q"]
        assert main(argv) == 0, name
        out[name] = pte
    return out


def check_against_report(info: dict, report: dict) -> None:
    """What inspect reads from the file agrees with what the run recorded."""
    assert sum(p["bytes"] for p in info["layout"]) == info["bytes"] == report["pte_bytes"]
    claimed = {
        n["backend"] for n in (report["arbitration"] or {}).get("nodes", []) if n["claimed_by"]
    }
    assert {d["backend"] for d in info["delegates"]} == claimed
    counts = (report["arbitration"] or {}).get("counts", {})
    assert {p["pass"]: p["nodes"] for p in info["partitions"]} == counts
    for p in info["partitions"]:  # every partition pass that took nodes left a delegate
        if p["pass"] == "portable":
            continue
        assert (p["nodes"] > 0) == any(d["backend"] == p["backend"] for d in info["delegates"])


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_inspect_numbers_match_the_file_and_the_report(built, pipeline):
    pte = built[pipeline]
    info = inspect_pte(pte)
    check_against_report(info, json.loads(pte.with_suffix(".report.json").read_text()))
    assert info["constant_methods"]["get_max_seq_len"] == 128
    assert info["constant_methods"]["get_n_layers"] == 2
    (forward,) = [m for m in info["methods"] if m["name"] == "forward"]
    assert forward["inputs"][0] == {"tensor": "int64", "shape": [1, 127]}
    assert forward["outputs"] == [{"tensor": "float32", "shape": [1, 512]}]
    assert sum(c["bytes"] for c in info["constants"]) <= info["bytes"]
    assert info["runtime"] == {
        "missing_kernels": [],
        "missing_backends": [],
        "loads": True,
        "why": None,
    }
    if pipeline == "portable_default":
        assert info["delegates"] == [] and "aten::linear.out" in forward["kernels"]
    else:
        assert "aten::linear.out" not in forward["kernels"]  # XNNPACK took the linears
    names = {c["name"] for c in info["constants"]}
    assert "tok_embeddings.weight" in names  # the embedding stays on a portable kernel
    if pipeline == "xnnpack_default":  # fp32 weights keep their hash inside XNNPACK
        assert "layers.1.feed_forward.w1.weight" in names and "layers.1" in info["by_layer"]


@pytest.mark.slow
def test_inspect_cli_text_json_and_diff(built, capsys):
    code, out, err = run(capsys, "inspect", str(built["xnnpack_default"]))
    assert code == 0 and err == ""
    assert "layout (adds up to the file size):" in out
    assert "get_vocab_size = 512" in out and "partition-xnnpack-dq (XnnpackBackend)" in out
    assert "runtime here: every kernel and backend registered; the program loads" in out
    code, out, _ = run(capsys, "inspect", "--json", str(built["portable_default"]))
    assert code == 0 and json.loads(out)["bytes"] == built["portable_default"].stat().st_size
    a, b = built["xnnpack_default"], built["portable_default"]
    code, out, _ = run(capsys, "inspect", "--diff", str(a), str(b), "--json")
    changes = json.loads(out)
    assert code == 0 and changes["bytes"] == [a.stat().st_size, b.stat().st_size]
    assert changes["delegates"]["XnnpackBackend"][1] is None
    assert changes["kernels"]["aten::linear.out"][0] is None
    assert changes["metadata"] == {}
    code, out, _ = run(capsys, "inspect", "--diff", str(a), str(b))
    assert "delegates (count, payload, weights):" in out and "aten::linear.out" in out


def test_inspect_refuses_what_is_not_a_pte(tmp_path, capsys):
    bogus = tmp_path / "notes.pte"
    bogus.write_text("hello, not a program")
    code, _, err = run(capsys, "inspect", str(bogus))
    assert code == 2 and err.count("\n") == 1 and "not an ExecuTorch program" in err
    code, _, err = run(capsys, "inspect", str(tmp_path / "missing.pte"))
    assert code == 2 and "cannot read" in err
    code, _, err = run(capsys, "inspect", "--diff", str(bogus))
    assert code == 2 and "--diff compares two files" in err
