"""The pass-result cache, in one run: how much of a re-export it saves.

On one random checkpoint, ``driver run --pipeline xnnpack_default`` runs five times, each
in its own subprocess, sharing a fresh cache directory:

    uncached   --no-cache: the baseline
    first      empty cache (every pass runs and is stored)
    identical  the same command again                        target <= 0.2x
    emit       only an emit option changed (another -o path)  target <= 0.5x
    placement  convert-to-linear left out of the pipeline     target <= 0.5x

It also prints the cache's size after the first run as a multiple of the .pte (target
<= 1.5x: tensors are stored once, by content) and the first run's wall time and peak RSS
over the uncached run's (target <= 1.05: the cache is written off the critical path).

Ratios are (wall - imports) / (uncached wall - imports): ``uncached`` is the same command
with ``--no-cache`` (so the first run's ratio shows the cost of storing), ``imports`` the
fixed cost of starting Python and importing torch, ExecuTorch and pteflow, measured
separately (after a warm-up import, the lower of two) and printed. Machines shared with
other jobs are noisy: compare ratios from one run only. The .pte of the identical run
must be byte-identical to the first's.

    python benchmarks/bench_cache.py --size tiny
    python benchmarks/bench_cache.py --size stories
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reference import (
    SIZES,
    _wait,
    measured_popen,
    pteflow_command,
    write_checkpoint,
)

IMPORTS = (
    "import torch, executorch.exir, torchao, pteflow.driver.cli, pteflow.passes.registry; "
    "pteflow.passes.registry.load_registry()"
)


#: peak RSS (MB) of each run measured with ``timed``, by log name
PEAK_MB: dict[str, float] = {}


def timed(cmd: list[str], log: Path) -> float:
    """Wall time of ``cmd`` in a subprocess; its own peak RSS goes to ``PEAK_MB``."""
    with open(log, "wb") as f:
        t0 = time.perf_counter()
        proc = measured_popen(cmd, log.with_suffix(".peak"), stdout=f, stderr=subprocess.STDOUT)
        _status, rusage = _wait(proc, None)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}; see {log}")
    PEAK_MB[log.stem] = rusage.ru_maxrss / 1024
    return wall


def _size(directory: Path) -> int:
    """Everything the cache holds: entries, blobs, records."""
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--out", help="keep the files here (default: a temporary directory)")
    args = ap.parse_args()
    _params, max_seq_len = SIZES[args.size]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        params, ckpt = write_checkpoint(out / "ckpt", args.size)
        cache = out / "cache"

        def driver(pipeline: str, pte: str, run: str, *extra: str) -> list[str]:
            return pteflow_command(
                pipeline,
                params,
                ckpt,
                out / pte,
                max_seq_len=max_seq_len,
                extra_args=[
                    "--cache-dir",
                    str(cache),
                    "--report",
                    str(out / f"{run}.report.json"),
                    *extra,
                ],
            )

        # the first import after a while reads from disk: warm the page cache first
        timed([sys.executable, "-c", IMPORTS], out / "warmup.log")
        imports = timed([sys.executable, "-c", IMPORTS], out / "imports.log")
        runs = {
            "uncached": timed(
                driver("xnnpack_default", "uncached.pte", "uncached", "--no-cache"),
                out / "uncached.log",
            ),
            "first": timed(driver("xnnpack_default", "first.pte", "first"), out / "first.log"),
        }
        first_pte = (out / "first.pte").read_bytes()
        stored = json.loads((cache / "last_run.json").read_text())
        cache_bytes = _size(cache)
        same_as_uncached = first_pte == (out / "uncached.pte").read_bytes()
        runs["identical"] = timed(
            driver("xnnpack_default", "first.pte", "identical"), out / "identical.log"
        )
        identical = (out / "first.pte").read_bytes() == first_pte
        runs["emit"] = timed(driver("xnnpack_default", "emit.pte", "emit"), out / "emit.log")
        runs["placement"] = timed(
            driver(
                "xnnpack_default",
                "placement.pte",
                "placement",
                "--set",
                "convert-to-linear.enabled=false",
            ),
            out / "placement.log",
        )
        imports = min(imports, timed([sys.executable, "-c", IMPORTS], out / "imports2.log"))
        base = runs["uncached"] - imports
        targets = {"identical": 0.2, "emit": 0.5, "placement": 0.5}
        print(f"size={args.size}  imports (fixed cost, excluded): {imports:.1f}s")
        print(f"{'run':10s} {'wall s':>7s} {'ratio':>6s} {'target':>7s}  cached passes")
        for name, wall in runs.items():
            ratio = (wall - imports) / base
            report = json.loads((out / f"{name}.report.json").read_text())
            n_cached = sum(p["cached"] for p in report["passes"])
            target = f"<={targets[name]}" if name in targets else ""
            print(
                f"{name:10s} {wall:7.1f} {ratio:6.2f} {target:>7s}  "
                f"{n_cached}/{len(report['passes'])}",
                flush=True,
            )
        print(f"identical run wrote the same .pte bytes as the first: {identical}")
        print(f"the first run wrote the same .pte bytes as --no-cache: {same_as_uncached}")
        print(
            f"the first run spent {stored['store_s']:.1f}s storing {stored['stored']} entries "
            f"on the critical path (included in its wall time) and "
            f"{stored.get('write_s', 0.0):.1f}s writing them in the background"
        )
        pte_bytes = len(first_pte)
        print(
            f"cache after one cold run: {cache_bytes / 2**20:.1f} MiB = "
            f"{cache_bytes / pte_bytes:.2f}x the .pte ({pte_bytes / 2**20:.1f} MiB; "
            "target <= 1.5x)"
        )
        print(
            "cold with the cache / --no-cache: wall "
            f"{runs['first'] / runs['uncached']:.3f}, peak RSS "
            f"{PEAK_MB['first'] / PEAK_MB['uncached']:.3f} (targets <= 1.05; "
            f"{PEAK_MB['first']:.0f} / {PEAK_MB['uncached']:.0f} MB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
