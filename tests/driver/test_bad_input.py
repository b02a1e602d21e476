"""Bad input is refused before any work: one line on stderr, exit 2, nothing written.

Each case names what was wrong and where (the flag, the file and its key). "Nothing
written" is checked on the whole working directory (no .pte, no report, no
pteflow-repro/), which every test here runs in.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._helpers import MODELS, run

FULL = "export,to-edge,to-executorch,emit"

BUILDERS = """
import sys

import torch

from tests.models import mlp


def raises():
    raise RuntimeError("weights not found")


def exits():
    sys.exit(3)


def wrong_inputs():
    module, _ = mlp()
    return module, (torch.randn(4, 7),)


def needs_missing_package():
    import no_such_package_xyz  # noqa: F401


def program(level):
    from pteflow.ir import Level
    from pteflow.testing import build_program

    module, inputs = mlp()
    return build_program(module, inputs, level=Level.parse(level))


def aten():
    return program("aten")


def edge():
    return program("edge")


def executorch():
    return program("executorch")
"""


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A fresh working directory holding ``builders.py`` (the --model functions above)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "builders.py").write_text(BUILDERS)
    return tmp_path


def refused(capsys, work: Path, *argv: str) -> str:
    """Run ``driver ARGV``: exit 2, one stderr line without a traceback, nothing written."""
    before = set(work.rglob("*"))
    code, _out, err = run(capsys, *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert set(work.rglob("*")) - before == set(), "a refused run wrote files"
    return lines[0]


def model(name: str) -> list[str]:
    return ["--model", f"builders.py:{name}"]


# --------------------------------------------------------------------------- --model code


def test_a_builder_that_raises(capsys, work):
    line = refused(capsys, work, "run", *model("raises"), "--passes", FULL, "-o", "m.pte")
    assert "--model 'builders.py:raises': raises() failed: RuntimeError: weights not found" in line


def test_a_builder_that_calls_sys_exit(capsys, work):
    line = refused(capsys, work, "run", *model("exits"), "--passes", FULL, "-o", "m.pte")
    assert "--model 'builders.py:exits'" in line and "sys.exit(3)" in line


def test_a_model_file_with_a_syntax_error(capsys, work):
    (work / "broken.py").write_text("def build(:\n    pass\n")
    line = refused(capsys, work, "run", "--model", "broken.py:build", "--passes", FULL)
    assert "--model 'broken.py:build': broken.py line 1: SyntaxError" in line


def test_a_missing_import_inside_the_model_file_is_not_the_file_missing(capsys, work):
    line = refused(capsys, work, "run", *model("needs_missing_package"), "--passes", FULL)
    assert "needs_missing_package() failed: ModuleNotFoundError" in line
    assert "no_such_package_xyz" in line


def test_a_model_that_rejects_its_example_inputs(capsys, work):
    line = refused(capsys, work, "run", *model("wrong_inputs"), "--passes", FULL, "-o", "m.pte")
    assert "--model 'builders.py:wrong_inputs': the model fails on its example inputs" in line
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied" in line


def test_a_missing_function_names_the_closest(capsys, work):
    line = refused(capsys, work, "run", *model("raise"), "--passes", FULL)
    assert "has no function 'raise'; closest: raises" in line


def test_a_model_file_that_is_a_directory(capsys, work):
    (work / "pkg.py").mkdir()
    line = refused(capsys, work, "run", "--model", "pkg.py:build", "--passes", FULL)
    assert "pkg.py is a directory" in line


def test_the_debug_flag_shows_the_users_traceback(capsys, work):
    with pytest.raises(Exception, match="weights not found") as info:
        run(capsys, "--debug", "run", *model("raises"), "--passes", FULL)
    assert isinstance(info.value.__cause__, RuntimeError)


# --------------------------------------------------------------------------- Programs at any level


def test_an_aten_program_refuses_passes_that_read_eager(capsys, work):
    line = refused(
        capsys, work, "run", *model("aten"), "--passes", f"quantize-8da4w,{FULL}", "-o", "m.pte"
    )
    assert "gives an aten program, but quantize-8da4w reads eager programs" in line


def test_an_executorch_program_is_refused_with_the_reason(capsys, work):
    line = refused(capsys, work, "run", *model("executorch"), "--passes", "emit", "-o", "m.pte")
    assert "gives an executorch program, which has no torch model to verify" in line


@pytest.mark.slow
@pytest.mark.parametrize(("level", "left_out"), [("aten", "export"), ("edge", "export, to-edge")])
def test_aten_and_edge_programs_compile_to_a_verified_pte(capsys, work, level, left_out):
    code, out, err = run(capsys, "run", *model(level), "--passes", FULL, "-o", "m.pte")
    assert code == 0, err
    assert f"left out (the model is already past them): {left_out}" in out
    report = json.loads((work / "m.report.json").read_text())
    ran = [p["name"] for p in report["passes"]]
    assert ran == FULL.split(",")[len(left_out.split(", ")) :]
    assert report["verification"]["ok"] is True


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-o", "/proc/m.pte"], "-o /proc/m.pte: cannot write in /proc"),
        (["-o", "adir.pte"], "-o adir.pte: is a directory"),
        (["-o", "builders.py/m.pte"], "builders.py is a file, not a directory"),
        (["-o", "m.pte", "--report", "/proc/r.json"], "--report /proc/r.json: cannot write"),
        (["-o", "m.pte", "--report", "adir.pte"], "--report adir.pte: is a directory"),
        (["-o", "m.pte", "--report", "m.pte"], "-o and --report are both m.pte"),
        (["-o", "m.pte", "--dump-dir", "m.pte"], "-o and --dump-dir are both m.pte"),
        (["-o", "m.pte", "--dump-dir", "builders.py"], "--dump-dir builders.py: exists and is"),
        (["-o", "m.pte", "--repro-dir", "/proc/repro"], "--repro-dir /proc/repro: cannot write"),
        (["-o", "m.pte", "--repro-dir", "builders.py/r"], "builders.py is a file"),
        (["-o", ""], "emit.path: must be a path ending in .pte, got ''"),
    ],
)
def test_unwritable_outputs_are_refused_before_the_first_pass(capsys, work, flags, message):
    (work / "adir.pte").mkdir()
    line = refused(capsys, work, "run", "--model", f"{MODELS}:mlp", "--passes", FULL, *flags)
    assert message in line


def test_check_coverage_json_path_is_checked_first(capsys, work):
    line = refused(
        capsys, work, "check-coverage", "--pipeline", "qnn_default", "--json", "/proc/c.json"
    )
    assert "--json /proc/c.json: cannot write in /proc" in line


# --------------------------------------------------------------------------- pipeline files


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('tolerance = "high"', "p.toml: tolerance must be a number, got 'high' (str)"),
        ("tolerance = -1", "p.toml: tolerance must be a finite number >= 0"),
        ("tolerance = nan", "p.toml: tolerance must be a finite number >= 0"),
        ("no_delegate_tolerance = true", "p.toml: no_delegate_tolerance must be a number"),
        ('verify = "yes"', "p.toml: verify must be true or false, got 'yes'"),
        ("description = 3", 'p.toml: description must be text ("..."), got 3'),
        ("model = 3", 'p.toml: model must be text ("..."), got 3'),
        ('model = "tiny-lama"', "p.toml: unknown model 'tiny-lama'; did you mean tiny-llama?"),
    ],
)
def test_ill_typed_pipeline_keys_name_the_file_the_key_and_the_type(capsys, work, toml, message):
    (work / "p.toml").write_text(f'{toml}\n[[passes]]\nname = "export"\n')
    line = refused(capsys, work, "run", "--pipeline", "p.toml")
    assert message in line


def test_a_bad_pipeline_model_names_the_pipeline_key_not_the_flag(capsys, work):
    (work / "p.toml").write_text('model = "builders.py:raises"\n[[passes]]\nname = "export"\n')
    line = refused(capsys, work, "run", "--pipeline", "p.toml")
    assert "pipeline p.toml: model 'builders.py:raises': raises() failed" in line
    assert "--model" not in line


def test_a_pipeline_file_that_is_not_text(capsys, work):
    (work / "p.toml").write_bytes(b"\xff\xfe[[passes]]")
    line = refused(capsys, work, "plan", "--pipeline", "p.toml")
    assert "pipeline p.toml: not UTF-8 text" in line


def test_a_pipeline_file_without_the_toml_suffix(capsys, work):
    (work / "mine").write_text('[[passes]]\nname = "export"\n')
    line = refused(capsys, work, "plan", "--pipeline", "mine")
    assert "a pipeline file's name must end in .toml" in line


# --------------------------------------------------------------------------- --passes and --set


@pytest.mark.parametrize(
    ("passes", "message"),
    [
        ("export{strict=true,strict=false}", "option strict of export is given twice"),
        ("{strict=true}", "pass options without a pass name"),
        ("export{=1}", "option '=1' of export must be KEY=VALUE"),
        ("qnn-replace-causal-mask{mask_value=-inf}", "expected a finite float, got '-inf'"),
    ],
)
def test_malformed_pass_specs(capsys, work, passes, message):
    line = refused(capsys, work, "plan", "--passes", passes)
    assert message in line


# --------------------------------------------------------------------------- messages


def test_an_unknown_pass_names_the_closest_and_where_to_list_them(capsys, work):
    line = refused(capsys, work, "plan", "--passes", "zzzz")
    assert "unknown pass 'zzzz'; closest known:" in line
    assert "known passs" not in line and "(driver list passes)" in line


def test_a_fact_an_option_provides_is_named_with_that_option(capsys, work):
    line = refused(
        capsys, work, "plan", "--passes", "export,to-edge,convert-to-linear,to-executorch"
    )
    assert "requires fact 'edge.ir-relaxed'" in line
    assert "add one of: to-edge{check_ir_validity=false}" in line


@pytest.mark.parametrize("flag", ["--max-seq-len", "--max-context-len"])
def test_a_bad_length_flag_is_blamed_on_the_flag(capsys, work, flag, tmp_path):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"dim": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 512}))
    line = refused(capsys, work, "run", "--passes", "export", "--params", str(params), flag, "-1")
    assert f"{flag} must be a positive integer, got -1" in line
    assert "params" not in line


def test_a_length_beyond_this_machines_memory_is_refused_before_allocating(capsys, work):
    line = refused(capsys, work, "run", "--passes", "export", "--max-seq-len", "100000000")
    assert "this model needs at least" in line and "--max-seq-len 100000000" in line


def test_params_beyond_this_machines_memory_are_refused_before_allocating(capsys, work):
    params = work / "params.json"
    params.write_text(json.dumps({"dim": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 10**11}))
    line = refused(capsys, work, "run", "--passes", "export", "--params", str(params))
    assert "this model needs at least" in line and "vocab_size 100000000000" in line


# --------------------------------------------------------------------------- --plugin code


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("def x(:\n", "plug.py line 1: SyntaxError"),
        ("raise RuntimeError('boom')\n", "importing it failed: RuntimeError: boom"),
        ("import sys\nsys.exit(4)\n", "importing it failed: it called sys.exit(4)"),
    ],
)
def test_a_plugin_that_fails_on_import(capsys, work, code, message):
    (work / "plug.py").write_text(code)
    line = refused(capsys, work, "plan", "--passes", "export", "--plugin", "plug.py")
    assert f"--plugin plug.py: {message}" in line


def test_a_fractional_number_for_an_integer_option_is_refused_not_truncated(capsys, work):
    (work / "p.toml").write_text('[[passes]]\nname = "quantize-8da4w"\ngroup_size = 32.5\n')
    line = refused(capsys, work, "plan", "--pipeline", "p.toml")
    assert "quantize-8da4w.group_size: expected int, got 32.5" in line


# --------------------------------------------------------------------------- params.json values


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"head_dim": 7}, "the head dimension 7 is odd"),
        ({"norm_eps": float("inf")}, "norm_eps must be a finite number, got inf"),
        ({"use_scaled_rope": "yes"}, "use_scaled_rope must be true or false, got 'yes'"),
    ],
)
def test_params_values_that_export_would_choke_on_or_misread(capsys, work, extra, message):
    params = work / "params.json"
    base = {"dim": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 512}
    params.write_text(json.dumps({**base, **extra}))
    line = refused(capsys, work, "run", "--passes", "export", "--params", str(params))
    assert f"params {params}: {message}" in line
