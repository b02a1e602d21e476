"""``driver sweep`` against the same variants run one by one with ``driver run``.

The test's sweep (tiny Llama; xnnpack_default and portable_default x three to-executorch
option sets), three ways, each from a fresh start:

    sweep       driver sweep --workers N, a fresh cache directory
    no-cache    driver run --no-cache per variant, one after another
    warm        driver run per variant, one after another, sharing a fresh cache directory
                (the first fills it; the others restore the shared prefix)

Each ``driver`` command is its own process, so every way pays its imports (the sweep once
per worker). Prints the wall times and the ratios to ``no-cache``. Machines shared with
other jobs are noisy: compare ratios from one run only.

    python benchmarks/bench_sweep.py --workers 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETS = (
    "to-executorch.const_prop=true",
    "to-executorch.const_prop=false",
    "to-executorch.sym_shape_eval=upper-bound",
)
PIPELINES = ("xnnpack_default", "portable_default")
SWEEP = """\
pipelines = ["xnnpack_default", "portable_default"]
[axes]
"to-executorch" = [
    { const_prop = true }, { const_prop = false }, { sym_shape_eval = "upper-bound" },
]
[measure]
warmup = 1
runs = 3
"""


def driver() -> list[str]:
    return [sys.executable, "-m", "pteflow.driver"]


def timed(cmd: list[str], log: Path) -> float:
    with open(log, "ab") as f:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}; see {log}")
    return wall


def one_by_one(work: Path, name: str, cache: list[str]) -> float:
    total = 0.0
    (work / name).mkdir(parents=True, exist_ok=True)
    for pipeline in PIPELINES:
        for i, override in enumerate(SETS):
            out = work / name / f"{pipeline}-{i}.pte"
            cmd = [*driver(), "run", "--pipeline", pipeline, "--set", override, "-o", str(out)]
            total += timed([*cmd, *cache], work / f"{name}.log")
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="keep the files here (default: a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        work = Path(args.out or tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "sweep.toml").write_text(SWEEP)
        sweep = timed(
            [
                *driver(),
                "sweep",
                str(work / "sweep.toml"),
                "-o",
                str(work / "sweep-out"),
                "--workers",
                str(args.workers),
                "--cache-dir",
                str(work / "cache-sweep"),
            ],
            work / "sweep.log",
        )
        cold = one_by_one(work, "no-cache", ["--no-cache"])
        warm = one_by_one(work, "warm", ["--cache-dir", str(work / "cache-warm")])
    print(f"{len(PIPELINES) * len(SETS)} variants of the tiny Llama")
    for name, wall in (("sweep", sweep), ("no-cache", cold), ("warm", warm)):
        print(f"  {name:9s} {wall:7.1f} s   {wall / cold:.2f}x of no-cache")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
