"""Every named pipeline runs on the tiny Llama and verifies against eager in the runtime."""

from __future__ import annotations

import json

import pytest

from pteflow.driver.cli import main
from pteflow.driver.pipelines import named_pipelines
from pteflow.testing import write_random_checkpoint

pytestmark = pytest.mark.slow

LLM_PIPELINES = ["xnnpack_default", "xnnpack_8da4w", "xnnpack_pt2e", "portable_default"]


def test_the_llm_pipelines_ship():
    assert set(LLM_PIPELINES) <= set(named_pipelines())


def test_the_main_job_on_the_built_in_tiny_llama(tmp_path, capsys):
    out = tmp_path / "llama.pte"
    assert main(["run", "--pipeline", "xnnpack_default", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "model: tiny-llama" in stdout and "verify: max abs diff" in stdout
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["verification"]["ok"] and report["verification"]["steps"] == 10
    delegated = [p["delegated"] for p in report["passes"] if p["name"] == "partition-xnnpack-dq"]
    assert delegated[0]["XnnpackBackend"] > 0


@pytest.mark.parametrize("pipeline", ["xnnpack_pt2e"])
def test_pipeline_on_a_params_checkpoint_pair(pipeline, tmp_path, capsys):
    # the reference-equality test runs the other three with --params/--checkpoint
    params, ckpt = write_random_checkpoint(
        tmp_path / "ckpt", dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=512
    )
    out = tmp_path / f"{pipeline}.pte"
    code = main(
        [
            "run",
            "--pipeline",
            pipeline,
            "--params",
            str(params),
            "--checkpoint",
            str(ckpt),
            "-o",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["verification"]["ok"]
    assert "quantized.pt2e" in {f for p in report["passes"] for f in p["facts_gained"]}
