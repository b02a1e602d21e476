"""pytest plugin: pteflow's flows in ExecuTorch's backend test suite, results collected.

    python -m pytest -p tests.conformance.plugin \\
        .venv/lib/python3.11/site-packages/executorch/backends/test/suite/operators/test_add.py \\
        -m "flow_xnnpack or flow_pteflow_xnnpack" --conformance-results results.jsonl

* registers pteflow's flows (``flows.install``) before the suite's conftest is imported,
  so its ``test_runner`` fixture is parametrized over them too (``-m flow_pteflow_...``);
* seeds ``random`` and ``torch`` per test from the test's name without the flow, so a
  pteflow flow and its upstream twin see the same inputs (the suite alone draws a random
  seed per test);
* ``--conformance-results FILE`` appends one JSON line per test: the test (without the
  flow), the flow, the outcome (passed, failed, skipped, refused) and what failed: the
  suite's stage and, for pteflow, which pteflow check refused and why;
* ``--conformance-timeout S`` replaces the suite's per-test timeout (120 s for operators),
  for a shared, slower machine.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from .flows import FLOWS, install

# at import: `-p` plugins are imported before the suite's conftest, which reads the flows
# once when it is imported (to parametrize its test_runner fixture)
install()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pteflow conformance")
    group.addoption("--conformance-results", default=None, help="append results (JSON lines)")
    group.addoption("--conformance-timeout", type=float, default=None, help="per-test timeout")


def pytest_configure(config: pytest.Config) -> None:
    for name in FLOWS:  # the suite's conftest registers them too, once it is collected
        config.addinivalue_line("markers", f"flow_{name}: pteflow's twin of a suite flow")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    timeout = config.getoption("--conformance-timeout")
    if timeout is None:
        return
    for item in items:
        item.own_markers[:] = [
            pytest.mark.timeout(timeout).mark if m.name == "timeout" else m
            for m in item.own_markers
        ]


def flow_of(item: pytest.Item) -> Any:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("test_runner") if callspec is not None else None


def test_key(item: pytest.Item) -> str:
    """``operators/test_add.py::test_add_dtype[float32]``: the test, whatever the flow."""
    flow = flow_of(item)
    name = item.name
    if flow is not None and "[" in name:
        base, _, ids = name.partition("[")
        rest = [p for p in ids.rstrip("]").split("-") if p != flow.name]
        name = f"{base}[{'-'.join(rest)}]" if rest else base
    path = Path(str(item.path))
    return f"{path.parent.name}/{path.name}::{name}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if flow_of(item) is None:
        return
    import torch

    from .tester import NOTES

    NOTES.clear()
    seed = int.from_bytes(hashlib.md5(test_key(item).encode()).digest()[:4], "little")
    random.seed(seed)
    torch.manual_seed(seed)


def _chain(error: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    return " ".join(text.split())[:500]


def refusal(error: BaseException | None) -> str | None:
    """Which pteflow check refused, and why; ``None`` when the error is not a refusal.

    Refusals: a ``UserError`` (before work: an unschedulable plan, an unavailable backend,
    a model pteflow will not take), an ``InvariantError`` (a level invariant or claimed fact
    checked between passes), and emit's load-and-run check (``RuntimeLoadError``).
    """
    from pteflow.ir.errors import InvariantError, PassFailedError, UserError
    from pteflow.ir.runnable import RuntimeLoadError

    chain = _chain(error)
    failed = next((e for e in chain if isinstance(e, PassFailedError)), None)
    where = f" in pass {failed.pass_name}" if failed is not None else ""
    for e in chain:
        if isinstance(e, UserError):
            return f"refused{where}: {_one_line(e)}"
        if isinstance(e, InvariantError):
            return f"pteflow check{where}: {_one_line(e)}"
        if isinstance(e, RuntimeLoadError):
            return f"emit's load-and-run check: {_one_line(e)}"
    return None


def describe(item: pytest.Item, report: pytest.TestReport) -> dict[str, Any]:
    """The JSON line for one test's outcome."""
    from .tester import NOTES

    flow = flow_of(item)
    runner = getattr(item, "funcargs", {}).get("test_runner")
    records = list(getattr(runner, "_results", []) or [])
    failing = next((r for r in records if not r.result.is_success()), None)
    outcome, detail = report.outcome, ""
    if report.skipped:
        longrepr = report.longrepr
        detail = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    elif report.failed:
        error = failing.error if failing is not None else None
        stage = failing.result.display_name() if failing is not None else "error"
        why = refusal(error)
        if why is not None:
            outcome, detail = "refused", f"{stage}: {why}"
        elif error is not None:
            detail = f"{stage}: {_one_line(_chain(error)[-1])}"
        else:
            detail = " ".join(str(report.longrepr).split())[-500:]
    return {
        "test": test_key(item),
        "flow": flow.name if flow is not None else None,
        "outcome": outcome,
        "result": ", ".join(r.result.display_name() for r in records),
        "note": " ".join(NOTES),
        "detail": " ".join(detail.split())[:600],
        "seconds": round(report.duration, 3),
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    path = item.config.getoption("--conformance-results")
    if path is None or flow_of(item) is None:
        return
    # one line per test: the call's report, or setup's when setup skipped or failed
    if report.when == "call" or (report.when == "setup" and not report.passed):
        with open(path, "a") as f:
            f.write(json.dumps(describe(item, report)) + "\n")
