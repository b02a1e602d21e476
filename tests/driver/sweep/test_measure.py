"""One sweep variant in this process (what a Ray worker runs): a failing pass is the
variant's result, with the error and the reproducer, written where a resumed sweep finds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pteflow.driver.sweep.measure import RESULT, compile_variant

from .._helpers import MODELS, WRONG

PIPELINE = f"""\
model = "{MODELS}:mlp"

[[passes]]
name = "export"

[[passes]]
name = "raises-at-aten"

[[passes]]
name = "to-edge"

[[passes]]
name = "to-executorch"

[[passes]]
name = "emit"
"""


def task(tmp_path: Path, pipeline: Path, overrides: list[str]) -> dict:
    return {
        "id": "v",
        "label": "a variant",
        "pipeline": str(pipeline),
        "overrides": overrides,
        "plugins": [WRONG],
        "dir": str(tmp_path / "v"),
        "model": {
            "source": None,
            "params": None,
            "checkpoint": None,
            "max_seq_len": None,
            "max_context_len": None,
        },
        "cache": {"enabled": True, "directory": str(tmp_path / "cache"), "size": "1G"},
        "warmup": 1,
        "runs": 2,
    }


@pytest.mark.slow
def test_a_failing_pass_is_the_variants_result_with_its_reproducer(tmp_path):
    pipeline = tmp_path / "p.toml"
    pipeline.write_text(PIPELINE)
    result = compile_variant(task(tmp_path, pipeline, []))
    assert result["status"] == "failed"
    assert "raises-at-aten" in result["error"] and "boom at aten" in result["error"]
    assert Path(result["repro"]).is_dir()
    assert json.loads((tmp_path / "v" / RESULT).read_text()) == result
    assert not (tmp_path / "v" / "model.pte").exists()

    fixed = compile_variant(task(tmp_path, pipeline, ["raises-at-aten.enabled=false"]))
    assert fixed["status"] == "ok", fixed["error"]
    assert fixed["pte_bytes"] == (tmp_path / "v" / "model.pte").stat().st_size
    assert fixed["err_eager"] < 1e-5 and fixed["decode_ms"] > 0
