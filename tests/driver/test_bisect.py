"""``driver bisect``: the first pass that drifts or fails, in few evaluations."""

from __future__ import annotations

import re

import pytest

from pteflow.driver.bisect import bisect
from pteflow.driver.cli import main
from pteflow.driver.models import from_callable
from pteflow.driver.plugins import load_plugins
from pteflow.driver.spec import PassSpec, build_pass
from pteflow.passes.registry import load_registry

from ._helpers import MODELS, WRONG, run


def _mlp():
    return from_callable(f"{MODELS}:mlp")


def _passes(names: list[str]):
    registry = load_registry(extra=load_plugins([WRONG]))
    return registry, [build_pass(registry, PassSpec(n, {})) for n in names]


@pytest.mark.parametrize("where", [1, 7, 12, 29])
def test_names_the_wrong_pass_of_30_in_at_most_6_evaluations(where):
    names = ["export"] + ["noop-aten"] * 29
    names[where] = "flip-sign"
    registry, passes = _passes(names)
    result = bisect(_mlp, passes, tolerance=1e-5, registry=registry)
    assert result.first_bad == where
    assert result.order[where] == "flip-sign"
    assert result.evaluations <= 6 and result.prefix_runs <= 6
    text = result.render()
    assert f"first bad pass: #{where + 1} flip-sign" in text
    assert "+%neg" in text  # the diff of its input and output


def test_a_clean_pipeline_needs_one_evaluation():
    registry, passes = _passes(["export", "noop-aten", "noop-aten"])
    result = bisect(_mlp, passes, tolerance=1e-5, registry=registry)
    assert result.first_bad is None and result.evaluations == 1
    assert "no pass drifts" in result.render()


def test_a_raising_pass_is_found_without_bisecting():
    registry, passes = _passes(["export", "noop-aten", "raises-at-aten", "noop-aten"])
    result = bisect(_mlp, passes, tolerance=1e-5, registry=registry)
    assert result.first_bad == 2 and result.prefix_runs <= 3
    # numbered as the run's progress lines number it: the third pass scheduled
    assert re.search(
        r"it fails: pass 3/\d+ raises-at-aten failed: ValueError: boom at aten", result.render()
    )


def test_a_lying_pass_is_named_in_each_mode(capsys):
    code, out, err = run(
        capsys,
        "bisect",
        "--model",
        f"{MODELS}:mlp",
        "--plugin",
        WRONG,
        "--tol",
        "1e-5",
        "--passes",
        "export,noop-aten,flip-sign{lie=true},noop-aten",
    )
    assert code == 1, err
    assert "first bad pass: #3 flip-sign{lie=true}" in out
    assert "reported modified=False" in out


def test_cli_prints_probes_and_the_pass(capsys):
    code, out, err = run(
        capsys,
        "bisect",
        "--model",
        f"{MODELS}:mlp",
        "--plugin",
        WRONG,
        "--tol",
        "1e-5",
        "--passes",
        "export,noop-aten,noop-aten,flip-sign,noop-aten",
    )
    assert code == 1, err
    assert "probe: first 5 passes: BAD" in out
    assert "first bad pass: #4 flip-sign" in out


def test_bisect_without_tolerance_is_one_line(capsys):
    code, _out, err = run(capsys, "bisect", "--passes", "export")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "bisect needs a tolerance: --tol X" in err


def test_help_has_an_example(capsys):
    for cmd in ("bisect", "repro"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = capsys.readouterr().out
        assert "examples:" in out and f"driver {cmd} " in out
