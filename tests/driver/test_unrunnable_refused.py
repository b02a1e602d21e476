"""Issue 10: pipelines that wrote an unrunnable 8da4w .pte with exit 0 are refused up front."""

from __future__ import annotations

import pytest

from ._helpers import run

UNPARTITIONED = (
    "quantize-8da4w,export,to-edge{check_ir_validity=false},convert-to-linear,to-executorch,emit"
)


@pytest.mark.parametrize(
    "argv",
    [
        ("--passes", UNPARTITIONED),
        ("--pipeline", "xnnpack_8da4w", "--no-delegate"),
        ("--pipeline", "xnnpack_8da4w", "--set", "partition-xnnpack-dq.enabled=false"),
    ],
    ids=["passes", "no-delegate", "partitioner-disabled"],
)
def test_convert_to_linear_on_unpartitioned_8da4w_is_refused_before_work(capsys, tmp_path, argv):
    out = tmp_path / "x.pte"
    code, stdout, err = run(capsys, "run", *argv, "--no-verify", "-o", str(out))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    # the reader named is the one the pipeline cannot drop: to-executorch (torchao's ops
    # have no out variants), before convert-to-linear (which would break the linears)
    assert lines[0].startswith("driver: error: to-executorch#")
    assert "torchao-linears.delegated" in lines[0] and "no kernel runs it" in lines[0]
    assert "quantize-8da4w" in lines[0] and "add partition-xnnpack" in lines[0]
    assert "model:" not in stdout  # refused before the model was loaded
    assert list(tmp_path.iterdir()) == []


def test_plan_names_convert_to_linear_once_to_executorch_could_run(capsys):
    """Without to-executorch, convert-to-linear is the reader refused, and dropping it helps."""
    code, _, err = run(
        capsys,
        "plan",
        "--passes",
        "quantize-8da4w,export,to-edge{check_ir_validity=false},convert-to-linear",
    )
    assert code == 2
    assert "convert-to-linear#3 requires fact 'torchao-linears.delegated'" in err
    assert "or drop convert-to-linear" in err


def test_plan_accepts_8da4w_when_a_partitioner_takes_the_linears_first(capsys):
    code, out, err = run(capsys, "plan", "--pipeline", "xnnpack_8da4w")
    assert code == 0, err
    assert "after partition-xnnpack-dq#6: provides torchao-linears.delegated" in out


def test_an_xnnpack_group_size_that_is_not_a_multiple_of_32_is_refused_at_plan(capsys, tmp_path):
    out = tmp_path / "x.pte"
    for cmd in ("plan", "run"):
        extra = ("--no-verify", "-o", str(out)) if cmd == "run" else ()
        argv = ("--pipeline", "xnnpack_8da4w", "--set", "quantize-8da4w.group_size=8", *extra)
        code, stdout, err = run(capsys, cmd, *argv)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1
        assert "multiple of 32" in err and "group_size=8" in err and "partition-xnnpack-dq" in err
        assert "model:" not in stdout
    assert list(tmp_path.iterdir()) == []


def test_a_group_size_of_64_or_without_xnnpack_plans(capsys):
    code, _, err = run(
        capsys, "plan", "--pipeline", "xnnpack_8da4w", "--set", "quantize-8da4w.group_size=64"
    )
    assert code == 0, err
    code, _, err = run(capsys, "plan", "--passes", "quantize-8da4w{group_size=8},export,to-edge")
    assert code == 0, err
