"""Verification: non-finite outputs fail, a .pte that cannot run is a verdict, and a
quantized .pte is compared with the quantized eager model (fp32 drift reported)."""

from __future__ import annotations

import json

import attrs
import pytest
import torch

from pteflow.driver.models import from_callable
from pteflow.driver.verify import verify_pte

from ._helpers import MODELS, run

FP16 = "override-dtype{dtype=fp16},export,to-edge,to-executorch,emit"


def test_fp16_overflow_fails_verification_and_numerics_show_it(tmp_path, capsys):
    pte, report = tmp_path / "m.pte", tmp_path / "m.json"
    code, out, _ = run(
        capsys,
        *("run", "--model", f"{MODELS}:fp16_overflow", "--passes", FP16),
        *("-o", str(pte), "--report", str(report), "--track-numerics", "--no-cache"),
    )
    assert code == 1 and pte.exists()  # kept for inspection
    assert "VERIFICATION FAILED: 512 of 512 outputs are NaN in the .pte, finite in eager" in out
    data = json.loads(report.read_text())
    check = data["verification"]
    assert check["status"] == "failed"
    assert check["comparison"]["nonfinite"]["nan_where_finite"] == 512
    rows = {r["pass_"]: r for r in data["numerics"]}
    assert rows["(input)"]["over"] is False
    over = rows["override-dtype{dtype=fp16}"]
    # the lossy pass is not forgiven for NaN, and is not the baseline of later rows
    assert over["over"] and over["vs_eager"]["nonfinite"] == 512
    assert "NON-FINITE: 512 of 512 outputs are NaN" in over["note"]
    assert rows["export"]["over"] and rows["export"]["vs_eager"]["nonfinite"] == 512
    table = next(line for line in out.splitlines() if line.startswith("1  override-dtype"))
    assert "512 NaN/inf" in table and "first drift beyond tolerance" in table


def test_bisect_names_the_pass_that_makes_nan(capsys):
    code, out, _ = run(
        capsys,
        *("bisect", "--model", f"{MODELS}:fp16_overflow", "--passes", FP16, "--tol", "1e-2"),
    )
    assert code == 1
    assert "first bad pass: #1 override-dtype" in out
    assert "512 of 512 outputs are NaN in this program, finite in eager" in out


def test_a_pte_that_fails_to_execute_is_a_failed_verdict(tmp_path, executorch_mlp):
    """Steps the .pte cannot execute (a shape its static plan does not have): the runtime
    raises, and verification says where in one line instead of a traceback."""
    pte = tmp_path / "m.pte"
    pte.write_bytes(executorch_mlp.artifact.buffer)
    model = from_callable(f"{MODELS}:mlp")
    model = attrs.evolve(model, steps=[("forward", (torch.randn(7, 16),))])
    got = verify_pte(pte, model)
    assert got.failed and got.status == "failed"
    assert got.error and got.error.startswith(
        "the .pte fails in executorch.runtime while executing method 'forward' (step 1 of 1)"
    )
    assert "\n" not in got.error
    assert got.to_json()["error"] == got.error


def test_verification_loads_the_pte_from_its_file_not_its_bytes(
    tmp_path, executorch_mlp, monkeypatch
):
    """The runtime maps the file as a runner would: a verified run no longer holds a copy
    of the whole .pte (nor its deserialized segments) while it verifies (issue 12)."""
    import pathlib

    pte = tmp_path / "m.pte"
    pte.write_bytes(executorch_mlp.artifact.buffer)
    real = pathlib.Path.read_bytes

    def no_whole_pte(self):  # every other file reads as usual
        assert self.suffix != ".pte", f"{self} read whole"
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", no_whole_pte)
    got = verify_pte(pte, from_callable(f"{MODELS}:mlp"))
    assert got.ok, got.error


def test_bytes_that_do_not_load_are_a_failed_verdict(tmp_path):
    pte = tmp_path / "m.pte"
    pte.write_bytes(b"\0" * 64)
    got = verify_pte(pte, from_callable(f"{MODELS}:mlp"))
    assert got.failed and "does not load in executorch.runtime" in (got.error or "")


def test_tol_overrides_and_is_checked_up_front(tmp_path, capsys):
    pte = tmp_path / "m.pte"
    argv = ("run", "--model", f"{MODELS}:mlp", "--passes", "export,to-edge,to-executorch,emit")
    code, out, _ = run(capsys, *argv, "-o", str(pte), "--tol", "1e-5", "--no-cache")
    assert code == 0 and "tolerance 1e-05: ok" in out
    code, out, _ = run(capsys, *argv, "-o", str(pte), "--tol", "0")  # portable rounds
    assert code == 1 and "vs eager > tolerance 0; " in out
    code, _, err = run(capsys, *argv, "-o", str(pte), "--tol", "-1")
    assert code == 2 and "--tol must be a finite number >= 0, got -1.0" in err


def test_pipeline_tolerance_must_be_a_number(tmp_path, capsys):
    toml = tmp_path / "p.toml"
    toml.write_text('tolerance = "high"\n[[passes]]\nname = "export"\n')
    code, _, err = run(capsys, "plan", "--pipeline", str(toml))
    assert code == 2 and "tolerance must be a number, got 'high'" in err
    toml.write_text('tolerance = -1.0\n[[passes]]\nname = "export"\n')
    code, _, err = run(capsys, "plan", "--pipeline", str(toml))
    assert code == 2 and "tolerance must be a finite number >= 0, got -1.0" in err


PT2E = (
    "pt2e-prepare{quantizer=xnnpack-dynamic},pt2e-calibrate,pt2e-convert,export,to-edge,"
    "partition-xnnpack-dq,to-executorch,emit"
)


@pytest.mark.usefixtures("every_result_stored")  # the second run resumes after pt2e-convert
def test_quantized_run_verifies_against_the_quantized_model_and_keeps_the_cache(tmp_path, capsys):
    """--passes with pt2e: compared with the program after pt2e-convert at the quantized
    default tolerance (main compared it with fp32 eager at 1e-4 and failed), fp32 drift
    reported; a second run resumes from the cache and rebuilds the same reference."""
    argv = ("run", "--model", f"{MODELS}:mlp", "--passes", PT2E, "--cache-dir", str(tmp_path))
    reports = []
    for i in range(2):
        pte, report = tmp_path / f"m{i}.pte", tmp_path / f"m{i}.json"
        # another tolerance: the cached verdict does not apply, the reference is rebuilt
        tol = ("--tol", "0.04") if i else ()
        code, out, _ = run(capsys, *argv, "-o", str(pte), "--report", str(report), *tol)
        assert code == 0, out
        assert "cache: not used" not in out
        assert "verify: drift from fp32 eager (quantization error, reported only)" in out
        reports.append(json.loads(report.read_text()))
    first, second = (r["verification"] for r in reports)
    assert first["against"] == "quantized eager (after pt2e-convert)"
    assert first["tolerance"] == 0.05 and first["ok"]
    assert first["fp32_drift"]["max_abs_diff"] > 0
    assert any(p["cached"] for p in reports[1]["passes"] if p["name"] == "pt2e-convert")
    assert second.pop("tolerance") == 0.04 and "cached" not in second
    assert second == {k: v for k, v in first.items() if k != "tolerance"}


@pytest.fixture
def nan_checkpoint(tmp_path):
    from pteflow.testing import write_random_checkpoint

    params, ckpt = write_random_checkpoint(tmp_path, n_layers=1)
    state = torch.load(ckpt)
    state["layers.0.attention.wq.weight"][0, 0] = float("nan")
    torch.save(state, ckpt)
    return params, ckpt


@pytest.mark.slow
def test_a_checkpoint_with_one_nan_weight_fails(tmp_path, capsys, nan_checkpoint):
    params, ckpt = nan_checkpoint
    pte = tmp_path / "m.pte"
    code, out, _ = run(
        capsys,
        *("run", "--pipeline", "portable_default", "--params", str(params)),
        *("--checkpoint", str(ckpt), "-o", str(pte), "--no-cache"),
    )
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith("VERIFICATION FAILED"))
    assert "outputs are NaN in the .pte and in" in line
    assert "the model itself computes NaN" in line


@pytest.mark.slow
def test_8da4w_from_passes_verifies_against_the_quantized_model(tmp_path, capsys):
    """A correct 8da4w .pte built from --passes passes verification (it failed against fp32
    eager at 1e-4), and its drift from fp32 is reported, not checked."""
    pte, report = tmp_path / "m.pte", tmp_path / "m.json"
    passes = (
        "quantize-8da4w,export,to-edge{check_ir_validity=false},partition-xnnpack-dq,"
        "to-executorch,emit"
    )
    code, out, _ = run(
        capsys,
        *("run", "--params", str(_small_params(tmp_path)), "--passes", passes),
        *("-o", str(pte), "--report", str(report), "--no-cache"),
    )
    assert code == 0, out
    check = json.loads(report.read_text())["verification"]
    assert check["against"] == "quantized eager (after quantize-8da4w)"
    assert check["tolerance"] == 0.05 and check["max_abs_diff"] <= 0.05
    assert check["fp32_drift"]["max_abs_diff"] > check["max_abs_diff"]
    assert "verify: drift from fp32 eager" in out


def _small_params(tmp_path):
    from pteflow.testing import write_random_checkpoint

    params, _ = write_random_checkpoint(tmp_path / "small", n_layers=1)
    return params


def test_an_unrunnable_pte_is_never_ok_and_never_a_traceback(tmp_path, capsys):
    """8da4w weights fed to aten.linear by convert-to-linear (no kernel for int8 weights):
    refused up front (exit 2, one line) where the contracts catch it, else a failed
    verdict naming where it failed (exit 1, the file kept). On main: a raw traceback."""
    pte = tmp_path / "m.pte"
    passes = (
        "quantize-8da4w{group_size=16},export,to-edge{check_ir_validity=false},"
        "convert-to-linear,to-executorch,emit"
    )
    code, out, err = run(
        capsys, "run", "--model", f"{MODELS}:mlp", "--passes", passes, "-o", str(pte), "--no-cache"
    )
    assert "Traceback" not in err
    if code == 2:
        assert len([x for x in err.splitlines() if x.startswith("driver: error")]) == 1
        return
    assert code == 1 and pte.exists()
    line = next(x for x in out.splitlines() if x.startswith("VERIFICATION FAILED"))
    assert "the .pte fails in executorch.runtime while executing method 'forward'" in line


def test_no_named_pipeline_is_loose():
    """Quantized pipelines are compared with their quantized eager model, so none needs
    the old tolerance of 1.0; issue 10 asks for <= 0.05."""
    from pteflow.driver.pipelines import load, named_pipelines

    for name in named_pipelines():
        pipe = load(name)
        assert pipe.tolerance is None or pipe.tolerance <= 0.05, name
        assert pipe.no_delegate_tolerance <= 2e-3, name


@pytest.mark.slow
def test_xnnpack_8da4w_verifies_against_its_quantized_model(tmp_path, capsys):
    pte = tmp_path / "llama.pte"
    code, out, _ = run(capsys, "run", "--pipeline", "xnnpack_8da4w", "-o", str(pte))
    assert code == 0, out
    check = json.loads(pte.with_suffix(".report.json").read_text())["verification"]
    assert check["against"] == "quantized eager (after quantize-8da4w)"
    # quantize-8da4w rounds group scales to bf16 as XNNPACK stores them: the .pte computes
    # what the quantized model computes (0.067 apart without the rounding)
    assert check["tolerance"] <= 0.05 and check["max_abs_diff"] <= 1e-4
    # the quantization error itself is reported beside it, an order of magnitude larger
    assert check["fp32_drift"]["max_abs_diff"] > 5 * check["max_abs_diff"]
    assert "verify: drift from fp32 eager (quantization error, reported only)" in out
