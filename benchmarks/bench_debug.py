"""What finding the broken pass costs, in one run.

1. ``--track-numerics`` on the tiny Llama with ``xnnpack_default``: the pipeline
   runs once without and once with the numerics observer, in this process;
   the extra wall time over the plain pipeline's is the ratio (target <= 1.0).
   The tracker's own evaluation time over the pipeline's is printed too (less
   noisy on a shared machine).
2. Bisection of a 30-pass pipeline (export + 28 no-op ATEN passes + one wrong
   pass, at several positions, on the MLP): the number of evaluations and of
   prefix runs it needs (target <= 6).

    python benchmarks/bench_debug.py
    python benchmarks/bench_debug.py --skip-llama
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WRONG = str(ROOT / "tests" / "driver" / "wrong_passes.py")


def bench_numerics() -> dict:
    from pteflow.driver import pipelines
    from pteflow.driver.models import tiny_llama
    from pteflow.driver.numerics import NumericsTracker
    from pteflow.driver.spec import apply_overrides, build_passes
    from pteflow.passes import PassManager

    with tempfile.TemporaryDirectory() as tmp:
        specs = apply_overrides(
            pipelines.load("xnnpack_default").passes, [f"emit.path={Path(tmp) / 'm.pte'}"]
        )
        registry, passes = build_passes(specs)
        # warm-up: imports and first-call caches would otherwise land on the first run
        PassManager(passes[:3], registry=registry).run(tiny_llama().program)
        times = {}
        tracker = None
        for mode in ("plain", "numerics"):
            model = tiny_llama()
            t0 = time.perf_counter()
            observers = []
            if mode == "numerics":
                tracker = NumericsTracker(model.reference, model.steps, model.tolerance)
                observers.append(tracker)
            PassManager(passes, registry=registry).run(model.program, observers=observers)
            times[mode] = time.perf_counter() - t0
    assert tracker is not None
    return {
        "plain_s": times["plain"],
        "numerics_s": times["numerics"],
        "extra_ratio": (times["numerics"] - times["plain"]) / times["plain"],
        "eval_s": tracker.eval_s,
        "eval_ratio": tracker.eval_s / times["plain"],
        "rows": len(tracker.rows),
    }


def bench_bisect() -> list[dict]:
    from pteflow.driver.bisect import bisect
    from pteflow.driver.models import from_callable
    from pteflow.driver.spec import PassSpec, build_passes

    out = []
    for where in (1, 10, 20, 29):
        names = ["export"] + ["noop-aten"] * 29
        names[where] = "flip-sign"
        registry, passes = build_passes([PassSpec(n, {}) for n in names], [WRONG])
        t0 = time.perf_counter()
        result = bisect(
            lambda: from_callable(f"{ROOT / 'tests' / 'models.py'}:mlp"),
            passes,
            tolerance=1e-5,
            registry=registry,
        )
        out.append(
            {
                "wrong_at": where + 1,
                "found": (result.first_bad or -1) + 1,
                "evaluations": result.evaluations,
                "prefix_runs": result.prefix_runs,
                "seconds": time.perf_counter() - t0,
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-llama", action="store_true", help="only the bisection part")
    args = ap.parse_args()
    if not args.skip_llama:
        n = bench_numerics()
        print(
            f"track-numerics, tiny Llama, xnnpack_default ({n['rows']} rows): pipeline "
            f"{n['plain_s']:.1f}s, with numerics {n['numerics_s']:.1f}s -> extra "
            f"{n['extra_ratio']:.2f}x the pipeline (target <= 1.0); the tracker's own "
            f"evaluation {n['eval_s']:.1f}s = {n['eval_ratio']:.2f}x"
        )
    for b in bench_bisect():
        print(
            f"bisect, 30 passes, wrong pass #{b['wrong_at']}: found #{b['found']} in "
            f"{b['evaluations']} evaluations, {b['prefix_runs']} prefix runs "
            f"(target <= 6), {b['seconds']:.1f}s"
        )


if __name__ == "__main__":
    main()
