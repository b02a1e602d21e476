"""What ``driver plan`` and ``driver run`` print about passes can be pasted into ``--passes``."""

from __future__ import annotations

import json
import re

import pytest

from ._helpers import MODELS, run

AWKWARD_PTE = "out, dir {1}/m='a' b.pte"


def _plan_specs(out: str) -> list[str]:
    """The pass spec of each numbered line of ``driver plan``."""
    return [m.group(1) for m in re.finditer(r"^\s*\d+\. (.+?)  \[", out, re.M)]


def test_plan_lines_paste_back_into_passes(tmp_path, capsys):
    pte = tmp_path / AWKWARD_PTE
    passes = (
        f"emit{{path={json.dumps(str(pte))},smoke=false}},to-executorch{{const_prop=true}},"
        "export{strict=true},to-edge{check_ir_validity=false,skip_dim_order=true}"
    )
    code, out, err = run(capsys, "plan", "--passes", passes)
    assert code == 0, err
    specs = _plan_specs(out)
    assert specs == [
        "export{strict=true}",
        "to-edge{check_ir_validity=false,skip_dim_order=true}",
        "to-executorch{const_prop=true}",
        f"emit{{path={json.dumps(str(pte))},smoke=false}}",
    ]
    code, again, err = run(capsys, "plan", "--passes", ",".join(specs))
    assert code == 0, err
    assert _plan_specs(again) == specs  # the reasons name list positions, which differ


@pytest.mark.slow
def test_the_reports_order_pasted_into_passes_gives_the_same_run(tmp_path, capsys):
    pte = tmp_path / AWKWARD_PTE
    pte.parent.mkdir()
    code, out, err = run(
        capsys,
        "run",
        "--model",
        f"{MODELS}:mlp",
        "--passes",
        "emit,to-executorch{alloc_graph_input=false},export,to-edge{constant_methods=false}",
        "-o",
        str(pte),
        "--report",
        str(tmp_path / "first.json"),
    )
    assert code == 0, err
    order = json.loads((tmp_path / "first.json").read_text())["order"]
    assert order == [
        "export",
        "to-edge{constant_methods=false}",
        "to-executorch{alloc_graph_input=false}",
        f"emit{{path={json.dumps(str(pte))}}}",
    ]
    assert f"[ 4/4] {order[-1]}" in out  # the progress line prints the same text
    pte.unlink()

    code, out, err = run(
        capsys,
        "run",
        "--model",
        f"{MODELS}:mlp",
        "--passes",
        ",".join(order),
        "--report",
        str(tmp_path / "second.json"),
    )
    assert code == 0, err
    assert json.loads((tmp_path / "second.json").read_text())["order"] == order
    assert pte.is_file()  # the pasted emit path, commas, braces, quotes and spaces intact


def test_set_reads_a_quoted_value_as_passes_does(tmp_path, capsys):
    pte = str(tmp_path / "a, b.pte")
    code, out, err = run(
        capsys,
        "plan",
        "--passes",
        "export,to-edge,to-executorch,emit",
        "--set",
        f"emit.path={json.dumps(pte)}",
    )
    assert code == 0, err
    assert _plan_specs(out)[-1] == f"emit{{path={json.dumps(pte)}}}"
    # a value that is not one quoted string is taken as given
    code, out, err = run(
        capsys, "plan", "--passes", "export,to-edge,to-executorch,emit", "--set", "emit.path='x.pte"
    )
    assert code == 0, err
    assert _plan_specs(out)[-1] == """emit{path="'x.pte"}"""
