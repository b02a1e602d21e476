"""coreml_default and vulkan_default on the tiny Llama: delegate contents, arbitration, and
the verification skipped (not failed) on a host whose runtime cannot execute them.

One run per pipeline (module-scoped); each test reads its .pte and JSON report.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from pteflow.driver.cli import main
from pteflow.ir.views import pte_summary

pytestmark = pytest.mark.slow


def _run(pipeline: str, out: Path) -> tuple[Path, int, str, dict]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["run", "--pipeline", pipeline, "-o", str(out), "-v"])  # -v: the table
    report = json.loads(out.with_suffix(".report.json").read_text())
    return out, code, stdout.getvalue(), report


@pytest.fixture(scope="module")
def coreml_run(tmp_path_factory):
    return _run("coreml_default", tmp_path_factory.mktemp("coreml") / "llama_coreml.pte")


@pytest.fixture(scope="module")
def vulkan_run(tmp_path_factory):
    return _run("vulkan_default", tmp_path_factory.mktemp("vulkan") / "llama_vulkan.pte")


def test_coreml_pte_holds_one_delegate_with_the_whole_llama(coreml_run):
    out, code, _stdout, report = coreml_run
    assert code == 0 and out.is_file()
    methods = pte_summary(out.read_bytes())  # deserializes the flatbuffer
    forward = methods["forward"]
    assert forward.backends == ("CoreMLBackend",)
    assert forward.delegates == 1 and forward.delegate_calls == 1
    others = [m for name, m in methods.items() if name != "forward"]
    assert others and all(m.delegates == 0 for m in others)  # the constant methods
    arb = report["arbitration"]
    assert arb["order"] == ["partition-coreml"]
    assert arb["counts"]["portable"] == 0 and arb["counts"]["partition-coreml"] > 100
    assert {n["backend"] for n in arb["nodes"]} == {"CoreMLBackend"}
    assert any(n["op"].startswith("coreml.sdpa") for n in arb["nodes"])  # iOS 18 fused SDPA


def test_coreml_verification_is_skipped_not_failed(coreml_run):
    _out, code, stdout, report = coreml_run
    assert code == 0
    v = report["verification"]
    assert v["status"] == "skipped" and v["ok"] is None
    assert v["skipped"].startswith("cannot execute CoreML here: ")
    assert "CoreMLBackend" in v["skipped"] and "macOS/iOS" in v["skipped"]
    assert "verify: skipped, cannot execute CoreML here" in stdout


def test_vulkan_first_xnnpack_second_and_the_leftovers(vulkan_run):
    out, code, stdout, report = vulkan_run
    assert code == 0 and out.is_file()
    forward = pte_summary(out.read_bytes())["forward"]
    assert forward.backends == ("VulkanBackend",)
    assert forward.delegates >= 1 and forward.kernel_calls > 0
    arb = report["arbitration"]
    assert arb["order"] == ["partition-vulkan", "partition-xnnpack"]
    counts = arb["counts"]
    assert counts["partition-vulkan"] > 100
    # Vulkan took everything XNNPACK could have taken; the rest runs on portable kernels
    assert counts["partition-xnnpack"] == 0 and counts["portable"] > 0
    left = [n for n in arb["nodes"] if n["claimed_by"] is None]
    assert len(left) == counts["portable"] and sum(arb["portable_ops"].values()) == len(left)
    assert "aten.index_put.default" in arb["portable_ops"]
    assert "arbitration (nodes claimed, in partitioner order): partition-vulkan" in stdout
    assert "left to portable kernels:" in stdout
    records = {r["name"]: r for r in report["passes"]}
    assert records["partition-xnnpack"]["modified"] is False


@pytest.mark.parametrize("which", ["coreml", "vulkan"])
def test_inspect_reads_what_the_run_reported(which, coreml_run, vulkan_run):
    from pteflow.driver.inspect import inspect_pte

    out, _code, _stdout, report = coreml_run if which == "coreml" else vulkan_run
    info = inspect_pte(out)
    assert sum(p["bytes"] for p in info["layout"]) == info["bytes"] == out.stat().st_size
    claimed = {n["backend"] for n in report["arbitration"]["nodes"] if n["claimed_by"]}
    assert {d["backend"] for d in info["delegates"]} == claimed
    assert {p["pass"]: p["nodes"] for p in info["partitions"]} == report["arbitration"]["counts"]
    assert sum(p["bytes"] for p in info["layout"] if "delegate" in p["part"]) > 0
    # this host's runtime has neither backend: inspect says so by name, without loading
    assert info["runtime"]["missing_backends"] == sorted(claimed)
    assert info["runtime"]["loads"] is None


def test_vulkan_verification_is_skipped(vulkan_run):
    _out, code, stdout, report = vulkan_run
    assert code == 0
    assert report["verification"]["status"] == "skipped"
    assert "cannot execute Vulkan here" in report["verification"]["skipped"]
    assert "verify: skipped, cannot execute Vulkan here" in stdout
