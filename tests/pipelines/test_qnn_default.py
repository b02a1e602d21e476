"""qnn_default on a machine without the Qualcomm SDK: refused before any work, planned with
QNN's dependency table, and run end to end with --no-delegate against the fake-quantized
model; check-coverage reports per-op QNN support."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pteflow.backends import qnn
from pteflow.backends.qnn import qnn_edge_passes
from pteflow.driver.cli import main
from pteflow.ir import views

REPO = Path(__file__).resolve().parents[2]
MODELS = str(Path(__file__).parents[1] / "models.py")
NO_SDK = qnn.unavailable_reason() is not None


def _numbered(out: str) -> list[str]:
    """Pass names of `driver plan` output, in order."""
    return [ln.split()[1].split("{")[0] for ln in out.splitlines() if ln[:4].strip()[:-1].isdigit()]


@pytest.mark.skipif(not NO_SDK, reason="checks the refusal on a machine without the QNN SDK")
def test_run_without_the_sdk_exits_2_at_once_naming_what_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "QNN_SDK_ROOT"}
    driver = Path(sys.executable).with_name("driver")
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(driver), "run", "--pipeline", "qnn_default", "-o", str(tmp_path / "q.pte")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    elapsed = time.perf_counter() - t0
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "partition-qnn" in lines[0] and "QNN_SDK_ROOT" in lines[0]
    assert "libQnnHtp.so" in lines[0] and "--no-delegate" in lines[0]
    assert elapsed < 10
    assert not list(tmp_path.iterdir())  # nothing written


def test_plan_lists_qnns_edge_passes_in_qnns_dependency_order(capsys):
    assert main(["plan", "--pipeline", "qnn_default"]) == 0
    out = capsys.readouterr().out
    names = _numbered(out)
    edge = [p.name for p in qnn_edge_passes.passes()]
    assert set(edge) <= set(names)
    pos = {n: i for i, n in enumerate(names)}
    for spec in qnn_edge_passes.SPECS:  # every row of QNN's table is honoured
        cls = qnn_edge_passes.PASSES.get(spec.upstream)
        if cls is None or cls.info.name not in pos:
            continue
        for before in spec.after:
            dep = qnn_edge_passes.PASSES.get(before)
            if dep is not None and dep.info.name in pos:
                assert pos[dep.info.name] < pos[cls.info.name], (dep.info.name, cls.info.name)
    assert pos["to-edge"] < min(pos[n] for n in edge)
    assert max(pos[n] for n in edge) < pos["partition-qnn"] < pos["to-executorch"]
    assert names[-1] == "emit"
    # each QNN pass says why it sits where it does
    assert "qnn-decompose-acos declares after qnn-remove-redundancy" in out
    assert "split-mha-to-sha" not in names  # optional, off by default


def test_options_turn_on_sha_and_no_delegate_drops_the_qnn_only_passes(capsys):
    assert (
        main(["plan", "--pipeline", "qnn_default", "--set", "split-mha-to-sha.enabled=true"]) == 0
    )
    names = _numbered(capsys.readouterr().out)
    assert names.index("qnn-replace-sdpa-with-flex") < names.index("split-mha-to-sha")
    assert names.index("split-mha-to-sha") < names.index("qnn-convert-linear-to-conv2d")

    assert main(["plan", "--pipeline", "qnn_default", "--no-delegate"]) == 0
    names = _numbered(capsys.readouterr().out)
    assert "partition-qnn" not in names and "qnn-fold-qdq" not in names
    assert {"pt2e-convert", "qnn-remove-redundancy", "qnn-i64-to-i32", "emit"} <= set(names)


def _no_delegate_run(tmp_path: Path, capsys, *extra: str) -> tuple[dict, str]:
    out = tmp_path / "qnn.pte"
    code = main(["run", "--pipeline", "qnn_default", "--no-delegate", "-o", str(out), *extra])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out.with_suffix(".report.json").read_text())
    summary = views.pte_summary(out.read_bytes())["forward"]
    assert summary.delegates == 0 and summary.kernel_calls > 0  # portable kernels only
    return report, stdout


@pytest.mark.slow
def test_no_delegate_pte_verifies_against_the_fake_quantized_model(tmp_path, capsys):
    report, stdout = _no_delegate_run(tmp_path, capsys)
    check = report["verification"]
    assert check["ok"] and check["steps"] == 10
    assert check["against"] == "quantized eager (after pt2e-convert)"
    # 16a4w: ExecuTorch's quantize kernel rounds a few ties the other way (see the pipeline)
    assert check["max_abs_diff"] <= 2e-3
    assert "NOT DELEGATED" in stdout and "not QNN-delegated" in report["no_delegate"]["note"]
    assert "partition-qnn" in report["no_delegate"]["dropped"]
    assert "qnn-fold-qdq" in report["no_delegate"]["dropped"]
    ran = [p["name"] for p in report["passes"]]
    assert "qnn-remove-redundancy" in ran and "partition-qnn" not in ran


@pytest.mark.slow
def test_no_delegate_8a8w_equals_the_fake_quantized_model_to_1e_5(tmp_path, capsys):
    report, _ = _no_delegate_run(
        tmp_path,
        capsys,
        "--set",
        "pt2e-prepare.quantizer=qnn-8a8w",
        "--set",
        "split-mha-to-sha.enabled=true",
    )
    assert report["verification"]["max_abs_diff"] <= 1e-5
    assert "split-mha-to-sha" in [p["name"] for p in report["passes"]]


@pytest.mark.slow
def test_check_coverage_of_qnn_default_without_the_sdk(tmp_path, capsys):
    out = tmp_path / "coverage.json"
    assert main(["check-coverage", "--pipeline", "qnn_default", "--json", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "0 without QNN support" in stdout
    nodes = json.loads(out.read_text())["backends"]["qnn"]["nodes"]
    assert {n["op"] for n in nodes} >= {"aten.convolution.default", "aten.matmul.default"}
    assert all(n["status"] in {"builder", "pass-through"} for n in nodes)


@pytest.mark.slow
def test_check_coverage_lists_gaps_and_exits_1(tmp_path, capsys):
    model = tmp_path / "odd.py"
    model.write_text(
        "import torch\n"
        "class Odd(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.special.erfinv(torch.tanh(x))\n"
        "def build():\n"
        "    return Odd(), (torch.rand(2, 8),)\n"
    )
    code = main(
        [
            "check-coverage",
            "--model",
            f"{model}:build",
            "--passes",
            "export,to-edge{check_ir_validity=false},partition-qnn",
        ]
    )
    stdout = capsys.readouterr().out
    assert code == 1
    assert "aten.erfinv.default" in stdout and "no-builder" in stdout
    assert "1 without QNN support (aten.erfinv.default)" in stdout


def test_check_coverage_needs_a_backend_that_has_one(capsys):
    code = main(["check-coverage", "--model", f"{MODELS}:mlp", "--passes", "export,to-edge"])
    err = capsys.readouterr().err
    assert code == 2 and "no partition pass of this pipeline has a coverage check" in err
