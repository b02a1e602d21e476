"""ExecuTorch's own backend test suite through pteflow, side by side with ExecuTorch's flows.

The slow test runs the suite's operator tests for a fixed sample of modules under the
portable and XNNPACK flows, upstream's and pteflow's (``tests/conformance/flows.py``), in
pytest subprocesses, and requires pteflow to pass every test upstream passes there.
The fast tests check the comparison itself.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from benchmarks import conformance

WRONG_PASSES = str(Path(__file__).parents[1] / "driver" / "wrong_passes.py")

#: a fixed sample: elementwise with broadcasting and alpha, linear layers (weights, batch
#: shapes), an activation, a multi-input concat
SAMPLE = ("add", "linear", "relu", "cat")
SLICE_FLOWS = ("pteflow_portable", "pteflow_xnnpack")


def _line(test: str, flow: str, outcome: str, detail: str = "", result: str = "") -> dict:
    return {"test": test, "flow": flow, "outcome": outcome, "detail": detail, "result": result}


def test_a_test_upstream_passes_and_pteflow_does_not_is_a_regression(tmp_path):
    results = [
        _line("operators/test_x.py::test_a", "xnnpack", "passed", result="Success (Delegated)"),
        _line("operators/test_x.py::test_a", "pteflow_xnnpack", "refused", "pteflow check: why"),
        _line("operators/test_x.py::test_b", "xnnpack", "failed", "Output Mismatch"),
        _line("operators/test_x.py::test_b", "pteflow_xnnpack", "passed", result="Success"),
        _line("operators/test_x.py::test_c", "xnnpack", "passed", result="Success (Delegated)"),
    ]
    rows = conformance.pair(results, ["pteflow_xnnpack"])
    by_test = {r["test"].split("::")[1]: r for r in rows}
    assert by_test["test_a"]["pteflow"] == "refused"
    assert "pteflow check: why" in by_test["test_a"]["detail"]
    assert by_test["test_c"]["pteflow"] == "missing"  # never ran under pteflow: not a pass
    totals = conformance.totals(rows, "pteflow_xnnpack")
    assert [r["test"] for r in totals["regressions"]] == [
        "operators/test_x.py::test_a",
        "operators/test_x.py::test_c",
    ]
    table = conformance.write_report(tmp_path, rows, ["pteflow_xnnpack"], 1.0, results)
    assert "| pteflow_xnnpack (xnnpack) | 1 | 3 | 2/1/0/0 | 1/0/0/1 | 2 |" in table
    report = (tmp_path / "conformance.md").read_text()
    assert "`operators/test_x.py::test_a`: upstream passed, pteflow refused" in report
    header = (tmp_path / "conformance.csv").read_text().splitlines()[0]
    assert header == "test,flow,upstream,pteflow,detail"


def test_unknown_flow_or_module_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown flow"):
        conformance.run_suite(["pteflow_xnnpak"], ["add"], tmp_path / "r.jsonl")
    with pytest.raises(ValueError, match="no operator module"):
        conformance.run_suite(["pteflow_xnnpack"], ["addd"], tmp_path / "r.jsonl")


def test_parts_fold_in_chunk_order_keeping_whole_modules(tmp_path):
    """An interrupted parallel run: a finished chunk's part counts whole; an unfinished
    one keeps the modules it finished, not the one it was in the middle of."""
    results = tmp_path / "results.jsonl"
    flows = ["pteflow_xnnpack"]

    def lines(module: str, *flows_: str) -> str:
        return "".join(
            json.dumps(_line(f"operators/test_{module}.py::t", f, "passed")) + "\n" for f in flows_
        )

    both = ("xnnpack", "pteflow_xnnpack")
    (tmp_path / "results.jsonl.part001").write_text(lines("c", *both) + lines("d", "xnnpack"))
    (tmp_path / "results.jsonl.part000.done").write_text(lines("a", *both) + lines("b", *both))
    conformance.fold_parts(results, flows)
    modules = [r["test"].split("::")[0] for r in conformance._read(results)]
    assert (
        modules
        == ["operators/test_a.py"] * 2 + ["operators/test_b.py"] * 2 + ["operators/test_c.py"] * 2
    )
    assert not list(tmp_path.glob("*.part*"))
    assert conformance.done_modules(results, flows) == ["a", "b"]  # the last may re-run


def test_a_stopped_chunk_is_not_a_crash_and_stopping_ends_the_processes():
    """^C or SIGTERM must not record the chunk's unrun tests as failures (resume runs
    them); a native crash does. Stopping ends running processes and starts no more."""
    import subprocess
    import sys
    import time

    from benchmarks.conformance_runner import _Children, chunk_ended

    assert [chunk_ended(c, False) for c in (0, 1, 5, 2, -2, -15, -9, -11, -6, 3)] == [
        *["finished"] * 3, *["stopped"] * 4, *["crashed"] * 3,
    ]  # fmt: skip
    assert chunk_ended(0, True) == "stopped"
    running = _Children()
    proc = running.start([sys.executable, "-c", "import time; time.sleep(120)"], None)
    assert proc is not None
    t0 = time.perf_counter()
    running.stop()
    assert proc.poll() is not None and time.perf_counter() - t0 < 15
    assert running.start([sys.executable, "-c", "pass"], subprocess.DEVNULL) is None


@pytest.mark.slow
def test_pteflow_passes_every_sample_test_upstream_passes(tmp_path):
    results = conformance.run_suite(  # a generous timeout: CI machines may be busy
        SLICE_FLOWS, SAMPLE, tmp_path / "results.jsonl", log=tmp_path / "pytest.log",
        timeout=600, jobs=2,
    )  # fmt: skip
    rows = conformance.pair(results, SLICE_FLOWS)
    log = (tmp_path / "pytest.log").read_text()[-3000:]
    for flow in SLICE_FLOWS:
        totals = conformance.totals(rows, flow)
        assert totals["upstream"]["passed"] >= 10, (flow, totals["upstream"], log)
        assert not totals["regressions"], json.dumps(totals["regressions"], indent=1)
    # pteflow's XNNPACK flow delegated, and its .pte ran in the suite's comparison
    delegated = [
        r
        for r in results
        if r["flow"] == "pteflow_xnnpack" and r["result"] == "Success (Delegated)"
    ]
    assert any("test_linear" in r["test"] for r in delegated), results


@pytest.mark.slow
def test_the_suite_checks_the_pte_pteflow_wrote():
    """A wrong pass in pteflow's flow is a failed test: the suite runs pteflow's .pte."""
    import torch
    from executorch.backends.test.suite.flow import TestFlow
    from executorch.backends.test.suite.reporting import TestResult
    from executorch.backends.test.suite.runner import run_test

    from tests.conformance.flows import pteflow_flows
    from tests.conformance.tester import PteflowTester

    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())
    inputs = (torch.randn(2, 8),)
    xnnpack = next(f for f in pteflow_flows() if f.name == "pteflow_xnnpack")
    wrong = TestFlow(
        "pteflow_xnnpack_wrong",
        backend="xnnpack",
        tester_factory=functools.partial(
            PteflowTester, partition=("flip-sign", "partition-xnnpack"), plugins=(WRONG_PASSES,)
        ),
    )
    good = run_test(model, inputs, xnnpack, "t", "t", 0, None)
    assert good.result == TestResult.SUCCESS, good.error
    assert good.delegated_op_counts, "pteflow's XNNPACK partition took nothing"
    bad = run_test(model, inputs, wrong, "t", "t", 0, None)
    assert bad.result == TestResult.OUTPUT_MISMATCH_FAIL, (bad.result, bad.error)


@pytest.mark.slow
def test_a_model_the_quantizer_finds_nothing_in_compiles_unquantized_and_says_so():
    """pt2e-prepare refuses an add under the dynamic quantizer (it takes linears); the int8
    flow compiles it unquantized, as upstream's quantize stage leaves it, and notes why."""
    import torch
    from executorch.backends.test.suite.reporting import TestResult
    from executorch.backends.test.suite.runner import run_test

    from tests.conformance.flows import pteflow_flows
    from tests.conformance.tester import NOTES

    class Add(torch.nn.Module):
        def forward(self, x, y):
            return x + y

    flows = {f.name: f for f in pteflow_flows()}
    NOTES.clear()
    dynamic = flows["pteflow_xnnpack_dynamic_int8_per_channel"]
    summary = run_test(Add(), (torch.randn(3, 5), torch.randn(3, 5)), dynamic, "t", "t", 0, None)
    assert summary.result == TestResult.SUCCESS, summary.error
    assert len(NOTES) == 1 and "found nothing to quantize" in NOTES[0], NOTES
    assert "forward: nothing to quantize; left unquantized" in NOTES[0], NOTES
    NOTES.clear()
    static = flows["pteflow_xnnpack_static_int8_per_channel"]
    summary = run_test(Add(), (torch.randn(3, 5), torch.randn(3, 5)), static, "t", "t", 0, None)
    assert summary.result == TestResult.SUCCESS, summary.error
    assert not NOTES  # the static quantizer takes the add: quantized, nothing to note
