"""pteflow's named pipelines against ExecuTorch's own flow (export_llama), side by side.

One random checkpoint + params; both flows export it with the same options; both
.pte files run in the runtime on the same tokens. fp32 logits must agree to 1e-5,
and pteflow must leave no more work on portable kernels than the reference does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks.reference import run_reference, write_checkpoint
from pteflow.driver.cli import main
from pteflow.driver.models import from_params
from pteflow.ir.evaluate import load_runtime_program
from pteflow.ir.views import pte_summary

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"), "tiny")


def _logits(pte: Path, steps) -> list[torch.Tensor]:
    program = load_runtime_program(pte.read_bytes())
    method = program.load_method("forward")
    out = []
    for _name, (tokens, kwargs) in steps:
        out.append(method.execute([tokens, kwargs["input_pos"]])[0].clone())
    del method, program
    return out


@pytest.mark.parametrize("variant", ["xnnpack_default", "xnnpack_8da4w", "portable_default"])
def test_pteflow_matches_export_llama(variant, checkpoint, tmp_path, capsys):
    params, ckpt = checkpoint
    ref = Path(run_reference(variant, params, ckpt, tmp_path / "ref").pte_path)
    ours = tmp_path / f"{variant}.pte"
    code = main(
        [
            "run",
            "--pipeline",
            variant,
            "--params",
            str(params),
            "--checkpoint",
            str(ckpt),
            "-o",
            str(ours),
        ]
    )
    assert code == 0, capsys.readouterr().err

    steps = from_params(params, ckpt).steps
    for a, b in zip(_logits(ref, steps), _logits(ours, steps), strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)

    theirs, mine = pte_summary(ref.read_bytes()), pte_summary(ours.read_bytes())
    assert set(mine) == set(theirs), "the same methods (forward and the constant methods)"
    assert mine["forward"].kernel_calls <= theirs["forward"].kernel_calls
    assert mine["forward"].delegate_calls >= theirs["forward"].delegate_calls
    assert mine["forward"].backends == theirs["forward"].backends
