"""Which pass broke it: IR printing, dumps, timing and numerics from ``driver run``."""

from __future__ import annotations

import json
from typing import ClassVar

import attrs
import pytest
import torch

from pteflow.driver.debug import IRPrinter, changed_submodules, eager_structure, timing_table
from pteflow.ir import Level, Program
from pteflow.passes import Pass, PassContext, PassInfo, PassManager, PassResult

from ._helpers import MODELS, WRONG, run


def mlp_run(capsys, passes: str, *extra: str) -> tuple[int, str, str]:
    return run(
        capsys, "run", "--model", f"{MODELS}:mlp", "--passes", passes, "--plugin", WRONG, *extra
    )


@attrs.frozen
class ReluModuleToSigmoidPass(Pass):
    """Swap every nn.ReLU module for nn.Sigmoid (an EAGER rewrite)."""

    info: ClassVar[PassInfo] = PassInfo(name="relu-module-to-sigmoid", level_in=Level.EAGER)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        changed = False
        for module in program.modules().values():
            for name, sub in list(module.named_children()):
                if isinstance(sub, torch.nn.ReLU):
                    setattr(module, name, torch.nn.Sigmoid())
                    changed = True
        return PassResult(program, changed)


def test_eager_changes_name_the_changed_submodules():
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    program = Program.eager(module, (torch.randn(1, 4),))
    printed: list[str] = []
    printer = IRPrinter(changed=True, after=frozenset({"all"}), out=printed.append)
    PassManager([ReluModuleToSigmoidPass()]).run(program, observers=[printer])
    after, change = printed
    assert "IR after #1 relu-module-to-sigmoid" in after and "Sigmoid()" in after
    assert "-  (1): ReLU()" in change and "+  (1): Sigmoid()" in change
    assert "changed submodules:\n  forward/1  [changed] Sigmoid()" in change


def test_changed_submodules_reports_the_outermost():
    before = {"m": "Net()", "m/a": "Block()", "m/a.x": "Linear(w:float32[2, 2])"}
    after = {"m": "Net()", "m/a": "Other()", "m/a.y": "Linear(w:float32[2, 2])"}
    assert changed_submodules(before, after) == ["m/a  [changed] Other()"]
    module = torch.nn.Sequential(torch.nn.Linear(2, 3))
    structure = eager_structure(Program.eager(module, (torch.randn(1, 2),)))
    assert structure["forward/0"] == "Linear(weight:float32[3, 2], bias:float32[3])"


def test_timing_table_is_sorted_slowest_first(aten_mlp):
    from tests.fakes import ReluToSigmoidPass

    records = PassManager([ReluToSigmoidPass(), ReluToSigmoidPass()]).run(aten_mlp).records
    slow = attrs.evolve(records[1], wall_s=2.0, cpu_s=1.5)
    text = timing_table([attrs.evolve(records[0], wall_s=1.0, cpu_s=1.0), slow])
    lines = [ln for ln in text.splitlines() if "#" in ln]
    assert "#2 relu-to-sigmoid" in lines[0] and "#1 relu-to-sigmoid" in lines[1]
    assert "( 66.7%)" in lines[0] and "Total Execution Time: 3.0000" in text


def test_track_numerics_shows_the_jump_at_the_wrong_pass(capsys, tmp_path):
    report = tmp_path / "r.json"
    code, out, err = mlp_run(
        capsys,
        "export,flip-sign,noop-aten",
        "--track-numerics",
        "--timing",
        "--report",
        str(report),
    )
    assert code == 0, err
    rows = [ln for ln in out.splitlines() if ln[:2].strip().isdigit()]
    by_pass = {ln.split()[1]: ln for ln in rows}
    assert "ok" in by_pass["export"]
    assert "DRIFT" in by_pass["flip-sign"] and "<== first drift" in by_pass["flip-sign"]
    assert "<== first" not in by_pass["noop-aten"]
    assert "Pass execution timing report" in out
    data = json.loads(report.read_text())
    assert {r["pass"] for r in data["timing"]} == {"export", "flip-sign", "noop-aten"}
    numerics = {r["pass_"]: r for r in data["numerics"]}
    assert numerics["flip-sign"]["over"] and not numerics["export"]["over"]
    assert numerics["noop-aten"]["vs_prev"]["abs"] == 0


def test_timing_is_always_in_the_report(capsys, tmp_path):
    report = tmp_path / "r.json"
    code, _out, err = mlp_run(capsys, "export", "--report", str(report))
    assert code == 0, err
    assert [r["pass"] for r in json.loads(report.read_text())["timing"]] == ["export"]
    assert json.loads(report.read_text())["numerics"] is None


def test_print_ir_after_and_changed(capsys):
    code, out, err = mlp_run(
        capsys, "export,flip-sign,noop-aten", "--print-ir-after", "export", "--print-changed"
    )
    assert code == 0, err
    assert "// ----- IR after #1 export -----" in out and "= aten.linear.default(" in out
    assert "// ----- IR changed by #2 flip-sign -----" in out and "+%neg" in out
    assert "IR changed by #3" not in out  # noop-aten changed nothing: no diff


def test_print_ir_before_all(capsys):
    code, out, err = mlp_run(capsys, "export,noop-aten", "--print-ir-before", "all")
    assert code == 0, err
    assert "IR before #1 export" in out and "# level: eager" in out
    assert "IR before #2 noop-aten" in out


@pytest.mark.parametrize(
    ("flag", "value"), [("--print-ir-after", "to-edgee"), ("--print-ir-before", ",")]
)
def test_bad_print_selection_is_one_line(capsys, flag, value):
    code, _out, err = mlp_run(capsys, "export,noop-aten", flag, value)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert flag in err


def test_dump_dir_is_numbered_and_stable(capsys, tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        code, _out, err = mlp_run(capsys, "export,flip-sign,noop-aten", "--dump-dir", str(d))
        assert code == 0, err
    names = sorted(p.name for p in dirs[0].iterdir())
    assert names == ["000-input.txt", "001-export.txt", "002-flip-sign.txt", "003-noop-aten.txt"]
    assert names == sorted(p.name for p in dirs[1].iterdir())
    for name in names:
        assert (dirs[0] / name).read_text() == (dirs[1] / name).read_text(), name
    assert "aten.neg.default" in (dirs[0] / "002-flip-sign.txt").read_text()


def test_unknown_plugin_is_one_line(capsys):
    code, _out, err = run(capsys, "plan", "--passes", "export", "--plugin", "nosuch_mod_xyz")
    assert code == 2 and "--plugin nosuch_mod_xyz: cannot import 'nosuch_mod_xyz'" in err


@pytest.mark.slow
def test_dump_dir_is_stable_through_lowering(capsys, tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        code, _out, err = mlp_run(
            capsys,
            "export,to-edge,partition-xnnpack,to-executorch",
            "--dump-dir",
            str(d),
        )
        assert code == 0, err
    names = sorted(p.name for p in dirs[0].iterdir())
    assert names[-1] == "004-to-executorch.txt"
    for name in names:
        assert (dirs[0] / name).read_text() == (dirs[1] / name).read_text(), name
    assert (
        "## delegate forward/lowered_module_0 -> XnnpackBackend"
        in (dirs[0] / "003-partition-xnnpack.txt").read_text()
    )
