"""The Python API (``pteflow.compile``, ``plan``, ``bisect``): no argv, typed errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import pteflow
from pteflow.ir.errors import ModelError, OptionError, UnknownNameError, UserError


def test_importing_pteflow_loads_neither_torch_nor_the_api():
    code = (
        "import sys, pteflow\n"
        "print('torch' in sys.modules, 'pteflow.driver.api' in sys.modules)\n"
        "pteflow.plan\n"
        "print('pteflow.driver.api' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True"]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'compiel'"):
        pteflow.compiel  # noqa: B018


def test_plan_orders_a_pipeline_without_running_it():
    the_plan = pteflow.plan(passes=["emit", "to-executorch", "export", "to-edge"])
    assert [p.name for p in the_plan.ordered_passes()] == [
        "export",
        "to-edge",
        "to-executorch",
        "emit",
    ]
    assert "export" in the_plan.render()


def test_plan_applies_overrides_and_no_delegate():
    names = [p.name for p in pteflow.plan(pipeline="xnnpack_default").ordered_passes()]
    assert any(n.startswith("partition-xnnpack") for n in names)
    kept = pteflow.plan(pipeline="xnnpack_default", no_delegate=True).ordered_passes()
    assert not any(p.name.startswith("partition-") for p in kept)
    edited = pteflow.plan(pipeline="xnnpack_default", overrides=["to-edge.skip_dim_order=false"])
    (to_edge,) = [p for p in edited.ordered_passes() if p.name == "to-edge"]
    assert to_edge.skip_dim_order is False


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"pipeline": "xnnpack_dflt"}, UnknownNameError, "xnnpack_default"),
        ({"passes": "export,to-edg,emit"}, UnknownNameError, "to-edge"),
        ({"passes": "export{nope=1}"}, UnknownNameError, "nope"),
        ({"passes": "export{strict=maybe}"}, OptionError, "strict"),
        ({"pipeline": "xnnpack_default", "passes": "export"}, UserError, "not both"),
        ({}, UserError, "give a pipeline"),
        ({"pipeline": "xnnpack_default", "checks": "sometimes"}, OptionError, "checks"),
        ({"model": 42, "pipeline": "xnnpack_default"}, ModelError, "got int"),
        ({"model": "nomodule_xyz:build", "pipeline": "xnnpack_default"}, ModelError, "xyz"),
    ],
)
def test_compile_raises_the_error_tree_before_any_work(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        pteflow.compile(output=None, report=tmp_path / "r.json", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_compile_refuses_an_output_without_emit(tmp_path):
    with pytest.raises(UserError, match="no emit pass"):
        pteflow.compile(passes="export,to-edge", output=tmp_path / "m.pte")


def test_bisect_needs_a_tolerance():
    with pytest.raises(UserError, match="needs a tolerance"):
        pteflow.bisect(pipeline="portable_default", tol=None)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=">= 0"):
        pteflow.bisect(pipeline="portable_default", tol=-1.0)


@pytest.mark.slow
def test_compile_the_tiny_llama_without_argv(tmp_path, capsys):
    result = pteflow.compile(pipeline="xnnpack_default", output=tmp_path / "m.pte")
    assert capsys.readouterr().out == ""  # quiet without echo
    assert result.pte == tmp_path / "m.pte" and result.pte.stat().st_size > 0
    assert result.ok and result.verification.status == "ok"
    planned = [p.name for p in pteflow.plan(pipeline="xnnpack_default").ordered_passes()]
    assert [r.name for r in result.records] == planned
    assert any(r.delegated.get("XnnpackBackend") for r in result.records)
    assert result.report_path == tmp_path / "m.report.json"
    assert json.loads(result.report_path.read_text())["verification"]["status"] == "ok"
    assert result.report["pte"] == str(result.pte)


@pytest.mark.slow
def test_compile_a_module_object(tmp_path):
    import torch

    from tests.models import mlp

    module, inputs = mlp()
    before = {k: v.clone() for k, v in module.state_dict().items()}  # it is deep-copied
    lines: list[str] = []
    result = pteflow.compile(
        (module, inputs),
        passes="export,to-edge,to-executorch,emit",
        output=tmp_path / "mlp.pte",
        cache=False,
        echo=lines.append,
    )
    assert result.ok and result.verification is not None
    assert any(line.startswith("wrote ") for line in "".join(lines).splitlines())
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_driver_run_parses_its_flags_into_the_apis_options_once():
    from pteflow.driver.cli import parser
    from pteflow.driver.cli.run import options

    args = parser().parse_args(
        [
            "run",
            "--pipeline",
            "xnnpack_default",
            "--set",
            "to-edge.skip_dim_order=false",
            "--no-delegate",
            "--model",
            "m.py:build",
            "-o",
            "out.pte",
            "--no-verify",
            "--tol",
            "0.5",
            "--checks",
            "each",
            "--no-cache",
            "--cache-size",
            "1G",
            "--print-ir-after",
            "export",
            "--timing",
            "--repro-dir",
            "rd",
        ]
    )
    assert options(args) == pteflow.RunOptions(
        pipeline=pteflow.PipelineOptions(
            pipeline="xnnpack_default",
            overrides=["to-edge.skip_dim_order=false"],
            no_delegate=True,
        ),
        model=pteflow.ModelOptions(source="m.py:build"),
        checks="each",
        output="out.pte",
        verify=False,
        tol=0.5,
        cache=pteflow.CacheOptions(enabled=False, size="1G"),
        debug=pteflow.DebugOptions(print_ir_after="export", timing=True, repro_dir="rd"),
        keep_program=False,  # driver run releases the program before the runtime loads
    )
