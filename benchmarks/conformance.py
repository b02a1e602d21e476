"""ExecuTorch's own backend test suite, through pteflow and through ExecuTorch, side by side.

For each pteflow flow (``tests/conformance/flows.py``) and its upstream twin, runs the
suite's operator tests (``executorch/backends/test/suite/operators/test_<module>.py``) in
pytest subprocesses with ``tests.conformance.plugin``, then writes

    DIR/conformance.csv   test,flow,upstream,pteflow,detail (one row per test and flow;
                          outcomes passed, failed, skipped, refused)
    DIR/conformance.md    the machine, per-flow totals, every difference with its error,
                          and every pteflow refusal with the check that refused and why

and prints the totals. The bar: no test the upstream flow passes fails under its pteflow
twin (exit 1 when one does).

    python benchmarks/conformance.py                                 # everything (long)
    python benchmarks/conformance.py --flows pteflow_xnnpack --modules add,linear
    python benchmarks/conformance.py --jobs 2 --timeout 600        # a pytest process per core
    python benchmarks/conformance.py --jobs 2 --timeout 600 --resume   # after ^C or SIGTERM
"""

from __future__ import annotations

import argparse
import csv
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.conformance_runner import (  # noqa: E402
    _read,
    all_modules,
    check_selection,
    done_modules,
    fold_parts,
    run_suite,
)
from benchmarks.machine import machine  # noqa: E402
from tests.conformance.flows import FLOWS, NOT_BUILT, twin  # noqa: E402

OUTCOMES = ("passed", "failed", "skipped", "refused")


def pair(results: list[dict], flows: Sequence[str]) -> list[dict]:
    """One row per test and pteflow flow: upstream's outcome beside pteflow's."""
    by = {(r["flow"], r["test"]): r for r in results}
    rows = []
    for flow in flows:
        up = twin(flow)
        tests = sorted({t for (f, t) in by if f in (flow, up)})
        for test in tests:
            u, p = by.get((up, test)), by.get((flow, test))
            uo, po = (u or {}).get("outcome", "missing"), (p or {}).get("outcome", "missing")
            details = []
            if p and p["detail"] and po != "passed":
                details.append(f"pteflow: {p['detail']}")
            if (
                u
                and u["detail"]
                and uo != "passed"
                and (uo != po or not p or u["detail"] != p["detail"])
            ):
                details.append(f"upstream: {u['detail']}")
            if p and p.get("note"):
                details.append(f"pteflow: {p['note']}")
            if uo == po == "passed" and u["result"] != p["result"]:
                details.append(f"upstream: {u['result']}; pteflow: {p['result']}")
            rows.append({"test": test, "flow": flow, "upstream": uo, "pteflow": po,
                         "detail": " | ".join(details)})  # fmt: skip
    return rows


def totals(rows: list[dict], flow: str) -> dict:
    mine = [r for r in rows if r["flow"] == flow]
    up, pt = Counter(r["upstream"] for r in mine), Counter(r["pteflow"] for r in mine)
    return {
        "modules": len({r["test"].split("::")[0] for r in mine}),
        "tests": len(mine),
        "upstream": up,
        "pteflow": pt,
        "regressions": [r for r in mine if r["upstream"] == "passed" and r["pteflow"] != "passed"],
        "differences": [r for r in mine if r["upstream"] != r["pteflow"]],
        "refused": [r for r in mine if r["pteflow"] == "refused"],
        "noted": [
            r
            for r in mine
            if r["pteflow"] == "passed" and "found nothing to quantize" in r["detail"]
        ],
    }


def _counts(c: Counter) -> str:
    return "/".join(str(c.get(o, 0)) for o in OUTCOMES)


def _took(wall_s: float | None, results: list[dict]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    tests = sum(r.get("seconds", 0.0) for r in results) / 60
    wall = f"wall {wall_s / 60:.1f} min, " if wall_s is not None else ""
    return f"Time: {wall}tests {tests:.1f} min ({when})."


def write_report(
    out: Path, rows: list[dict], flows: Sequence[str], wall_s: float | None, results: list[dict]
) -> str:
    """conformance.csv and conformance.md in ``out``; returns the totals table."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "conformance.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["test", "flow", "upstream", "pteflow", "detail"])
        w.writeheader()
        w.writerows(rows)
    table = [
        "| pteflow flow (upstream twin) | modules | tests | upstream passed/failed/skipped/refused "
        "| pteflow passed/failed/skipped/refused | upstream passes pteflow does not |",
        "|---|---|---|---|---|---|",
    ]
    for flow in flows:
        t = totals(rows, flow)
        table.append(
            f"| {flow} ({twin(flow)}) | {t['modules']} | {t['tests']} | {_counts(t['upstream'])} "
            f"| {_counts(t['pteflow'])} | {len(t['regressions'])} |"
        )
    seen = sorted({r["test"].split("::")[0].removeprefix("operators/test_")[:-3] for r in rows})
    what = f"all {len(seen)} operator modules" if seen == all_modules() else ", ".join(seen)
    md = [
        "# ExecuTorch's backend test suite: pteflow vs upstream",
        "",
        f"Operators: {what}. Machine: {machine()}. {_took(wall_s, results)}",
        "",
        *table,
        "",
        "The bar: no test the upstream flow passes fails (or is skipped or refused) under "
        "its pteflow twin. `refused` = a pteflow check stopped it (the detail says which).",
        "",
    ]
    for flow in flows:
        t = totals(rows, flow)
        md += [f"## {flow} vs {twin(flow)}: {len(t['differences'])} difference(s)", ""]
        for r in t["differences"]:
            md.append(
                f"- `{r['test']}`: upstream {r['upstream']}, pteflow {r['pteflow']}. {r['detail']}"
            )
        refused = [r for r in t["refused"] if r not in t["differences"]]
        if refused:
            md += ["", "Refused by pteflow where upstream also did not pass:", ""]
            md += [f"- `{r['test']}`: {r['detail']}" for r in refused]
        if t["noted"]:
            md += [
                "",
                f"Compiled unquantized ({len(t['noted'])}): the quantizer found nothing to "
                "quantize; pt2e-prepare refuses such a model unless allow_unquantized=true, "
                "which the flow sets to leave it in float as upstream's quantizer does:",
                "",
            ]
            md += [f"- `{r['test']}`" for r in t["noted"]]
        md.append("")
    md += ["## Flows not built", ""] + [f"- `{k}`: {v}" for k, v in NOT_BUILT.items()] + [""]
    (out / "conformance.md").write_text("\n".join(md))
    return "\n".join(table)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the run as ^C does: the chunks first


def _lock(out: Path) -> Any:
    """An exclusive lock on ``out`` for this process's life, or None if another holds it."""
    import fcntl

    f = open(out / ".lock", "w")  # noqa: SIM115 (held open: the lock lives with the file)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", default=",".join(FLOWS), help="pteflow flows (default: all)")
    ap.add_argument(
        "--modules", default=None, help="operator modules, e.g. add,linear (default: all)"
    )
    ap.add_argument("--out", default="conformance-out", help="report directory")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report from DIR/results.jsonl (a run so far)")  # fmt: skip
    ap.add_argument("--resume", action="store_true",
                    help="keep DIR/results.jsonl and run only the modules it lacks")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=None,
                    help="per-test timeout in seconds (default: the suite's, 120)")  # fmt: skip
    ap.add_argument("--jobs", type=int, default=1,
                    help="pytest processes at once (default 1; one per core at most: "
                         "tests near their timeout may fail under load)")  # fmt: skip
    args = ap.parse_args(argv)
    flows = [f for f in args.flows.split(",") if f]
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    try:
        modules = [m for m in args.modules.split(",") if m] if args.modules else all_modules()
        check_selection(flows, modules)
    except ValueError as e:
        ap.error(str(e))
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        ap.error(f"--out {out}: {e.strerror or e}")
    t0 = time.perf_counter()
    wall: float | None = None
    if args.report_only:
        results = _read(out / "results.jsonl")
        if not results:
            ap.error(f"--report-only: no results in {out / 'results.jsonl'}; run without it first")
    else:
        lock = _lock(out)
        if lock is None:
            ap.error(f"--out {out}: another conformance run is writing there; wait for it")
        if args.resume:
            fold_parts(out / "results.jsonl", flows)
            done = set(done_modules(out / "results.jsonl", flows))
            modules = [m for m in modules if m not in done]
        else:
            for old in out.glob("results.jsonl*"):
                old.unlink()
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            results = run_suite(flows, modules, out / "results.jsonl", timeout=args.timeout,
                                log=out / "pytest.log", jobs=args.jobs)  # fmt: skip
        except KeyboardInterrupt:
            print("interrupted; the modules finished so far are kept: add --resume to go on",
                  file=sys.stderr)  # fmt: skip
            return 130
        wall = time.perf_counter() - t0
    rows = pair(results, flows)
    print(write_report(out, rows, flows, wall, results))
    print(f"report: {out / 'conformance.md'}, {out / 'conformance.csv'}")
    bad = sum(len(totals(rows, f)["regressions"]) for f in flows)
    if bad:
        print(f"{bad} test(s) upstream passes do not pass under pteflow (see the report)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
