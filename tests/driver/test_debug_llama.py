"""The tiny Llama with a wrong pass inserted into xnnpack_default: numerics and bisect find it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pteflow.driver.cli import main
from pteflow.driver.pipelines import load

from ._helpers import WRONG


def _pipeline_with_flip_sign(tmp_path: Path) -> Path:
    """xnnpack_default's passes plus flip-sign, as a pipeline file."""
    base = load("xnnpack_default")
    lines = ['description = "xnnpack_default with a wrong pass"', 'model = "tiny-llama"', ""]
    for spec in base.passes:
        lines.append("[[passes]]")
        lines.append(f'name = "{spec.name}"')
        for k, v in spec.options.items():
            value = str(tmp_path / "llama.pte") if k == "path" else v
            lines.append(f"{k} = {_toml(value)}")
        lines.append("")
        if spec.name == "export":
            lines += ["[[passes]]", 'name = "flip-sign"', ""]
    path = tmp_path / "broken.toml"
    path.write_text("\n".join(lines))
    return path


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


@pytest.mark.slow
def test_track_numerics_shows_the_jump_at_the_wrong_pass(tmp_path, capsys):
    pipe = _pipeline_with_flip_sign(tmp_path)
    code = main(
        ["run", "--pipeline", str(pipe), "--plugin", WRONG, "--track-numerics", "--no-verify"]
    )
    out = capsys.readouterr().out
    assert code == 0
    rows = {ln.split()[1]: ln for ln in out.splitlines() if ln[:2].strip().isdigit()}
    assert "ok" in rows["export"] and "ok" in rows["replace-sdpa-with-custom-op"]
    assert "<== first drift beyond tolerance" in rows["flip-sign"]


@pytest.mark.slow
def test_bisect_names_the_wrong_pass(tmp_path, capsys):
    pipe = _pipeline_with_flip_sign(tmp_path)
    code = main(["bisect", "--pipeline", str(pipe), "--plugin", WRONG, "--tol", "1e-4"])
    out = capsys.readouterr().out
    assert code == 1
    assert "first bad pass: #4 flip-sign" in out
    assert "+%aten_neg_default" in out or "+%neg" in out
