"""``driver sweep``'s grid: expansion, refusals through the planner, who waits for whom,
the Pareto front and the table; and the one-line refusal without Ray. No Ray work here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pteflow.driver.sweep import grid, results
from pteflow.ir.errors import UnknownNameError, UserError

from .._helpers import run


def sweep_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_an_axis_multiplies_only_the_pipelines_that_have_its_pass(tmp_path):
    spec = grid.load_spec(
        sweep_file(
            tmp_path,
            'pipelines = ["xnnpack_8da4w", "xnnpack_default"]\n'
            '[axes]\n"quantize-8da4w.group_size" = [32, 64, 128]\n'
            '"to-executorch" = [{ const_prop = true }, { const_prop = false, '
            'sym_shape_eval = "upper-bound" }]\n',
        )
    )
    labels = [v.label for v in spec.variants()]
    assert len(labels) == 3 * 2 + 2
    assert "xnnpack_8da4w quantize-8da4w.group_size=64 to-executorch.const_prop=true" in labels
    assert (
        "xnnpack_default to-executorch.const_prop=false to-executorch.sym_shape_eval=upper-bound"
        in labels
    )
    assert len({v.id for v in spec.variants()}) == len(labels)
    assert [v.id for v in spec.variants()] == [v.id for v in spec.variants()]  # stable


def test_the_planner_refuses_a_variant_with_its_reason_and_the_others_go_on(tmp_path):
    spec = grid.load_spec(
        sweep_file(
            tmp_path,
            'pipelines = ["xnnpack_8da4w"]\n[axes]\n"quantize-8da4w.group_size" = [32, 48, 64]\n',
        )
    )
    refused: list[str] = []
    planned = grid.plan_variants(spec, spec.variants(), refused.append)
    assert [p.variant.label for p in planned] == [
        "xnnpack_8da4w quantize-8da4w.group_size=32",
        "xnnpack_8da4w quantize-8da4w.group_size=64",
    ]
    assert len(refused) == 1
    assert refused[0].startswith("refused: xnnpack_8da4w quantize-8da4w.group_size=48: ")
    assert "multiple of 32" in refused[0]
    assert all(p.quantized for p in planned)


def test_no_valid_variant_exits_2_with_one_line_per_refusal(tmp_path, capsys):
    path = sweep_file(
        tmp_path,
        'pipelines = ["xnnpack_8da4w"]\n[axes]\n"quantize-8da4w.group_size" = [48, 80]\n',
    )
    code, out, err = run(capsys, "sweep", str(path), "-o", str(tmp_path / "out"))
    assert code == 2
    assert [line for line in out.splitlines() if line.startswith("refused:")] == [
        line for line in out.splitlines() if line
    ]
    assert len(out.splitlines()) == 2
    assert err.strip().splitlines() == [
        "driver: error: sweep sweep.toml: no valid variant (2 refused)"
    ]
    assert not (tmp_path / "out").exists()


def test_a_variant_waits_for_the_earlier_one_it_shares_stored_results_with(tmp_path):
    spec = grid.load_spec(
        sweep_file(
            tmp_path,
            'pipelines = ["xnnpack_default", "portable_default", "xnnpack_8da4w"]\n'
            '[axes]\n"to-executorch.const_prop" = [true, false]\n',
        )
    )
    planned = grid.plan_variants(spec, spec.variants(), pytest.fail)
    ids = [p.variant.id for p in planned]
    waits = grid.parents(planned)
    assert waits[ids[0]] is None
    assert waits[ids[1]] == ids[0]  # same passes up to to-executorch
    assert waits[ids[2]] == ids[0]  # portable: export is the same result
    assert grid.shared_prefix(planned[0], planned[1]) > grid.shared_prefix(planned[0], planned[2])
    # 8da4w quantizes before export: it shares no stored result and starts at once
    assert waits[ids[4]] is None
    assert waits[ids[5]] == ids[4]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('pipelines = ["xnnpack_default"]\nworkers = 2\n', "key"),
        ("[axes]\n", "give pipelines"),
        ('pipelines = ["xnnpack_default"]\n[axes]\n"to-edge" = [true]\n', "tables of options"),
        ('pipelines = ["xnnpack_default"]\n[axes]\n"to-edge.x" = []\n', "non-empty list"),
        ('pipelines = ["xnnpack_default"]\n[measure]\nruns = 0\n', "runs must be"),
        ('pipelines = ["xnnpack_default"\n', "not valid TOML"),
    ],
)
def test_a_malformed_sweep_file_is_refused_in_one_line(tmp_path, text, message):
    with pytest.raises(UserError) as e:
        grid.load_spec(sweep_file(tmp_path, text))
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    if message == "key":
        assert isinstance(e.value, UnknownNameError)


def test_pareto_front_and_table_with_a_failed_variant():
    rows = [
        {"label": "a", "status": "ok", "pte_bytes": 100, "err_eager": 0.1, "decode_ms": 1.0},
        {"label": "b", "status": "ok", "pte_bytes": 200, "err_eager": 0.01, "decode_ms": 1.0},
        {"label": "c", "status": "ok", "pte_bytes": 200, "err_eager": 0.1, "decode_ms": 2.0},
        {"label": "d", "status": "failed", "error": "in pass to-edge: boom", "repro": "/r/004"},
    ]
    results.mark_pareto(rows)
    assert [r["pareto"] for r in rows] == [True, True, False, False]
    text = results.table(rows)
    assert "failed: d: in pass to-edge: boom (reproduce: driver repro /r/004)" in text
    png = results.plot(rows)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_without_ray_one_line_says_how_to_install_it(tmp_path):
    """Ray made unimportable by a package of that name first on the path that refuses to
    import (the real torch and ExecuTorch are untouched)."""
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    path = sweep_file(tmp_path, 'pipelines = ["xnnpack_default"]\n')
    env = {**os.environ, "PYTHONPATH": str(shim.parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "pteflow.driver", "sweep", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "driver: error: driver sweep needs ray: pip install 'pteflow[sweep]'"
    ]
    assert not (tmp_path / "sweep-results").exists()


def test_an_axis_whose_pass_no_pipeline_has_is_refused_with_the_closest_name(tmp_path):
    spec = grid.load_spec(
        sweep_file(
            tmp_path,
            'pipelines = ["xnnpack_8da4w"]\n[axes]\n"quantise-8da4w.group_size" = [32]\n',
        )
    )
    with pytest.raises(UnknownNameError) as e:
        spec.variants()
    assert "'quantise-8da4w'" in str(e.value) and "did you mean quantize-8da4w" in str(e.value)
