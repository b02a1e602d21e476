"""``driver sweep SWEEP.toml``: compile and measure a grid of variants on Ray."""

from __future__ import annotations

import argparse
from typing import Any

from .args import cache_args, debug_flag, say

EXAMPLES = """\
examples:
  driver sweep sweep.toml                       # local Ray, one worker per core
  driver sweep sweep.toml --workers 2 -o out/   # results in out/
  driver sweep sweep.toml --address ray://head:10001 --cache-dir /shared/pteflow-cache

a sweep file:
  pipelines = ["xnnpack_8da4w", "xnnpack_default"]
  [axes]
  "quantize-8da4w.group_size" = [32, 64, 128]
"""


def add_parser(sub: Any) -> None:
    sp = sub.add_parser(
        "sweep",
        help="compile and measure a grid of variants on Ray",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Expand a sweep file (pipelines x pass-option values), refuse what the "
        "planner refuses, compile every variant as a Ray task sharing the pass cache, "
        "measure each .pte (size, decode latency, error) and write results.csv, "
        "results.json and results.png (size vs error, the Pareto front marked). "
        "Run again to resume: finished variants are skipped.",
    )
    sp.add_argument("sweep", metavar="SWEEP.toml", help="the sweep file")
    sp.add_argument(
        "-o",
        "--out",
        metavar="DIR",
        help="where the variants and results go (default: SWEEP-results beside the file)",
    )
    sp.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local Ray: how many variants run at once (default: the number of cores)",
    )
    sp.add_argument(
        "--address",
        metavar="ADDR",
        help="join a running Ray cluster (e.g. ray://head:10001 or auto) instead of "
        "starting Ray locally; the cache directory must be on a file system every node shares",
    )
    sp.add_argument(
        "--retry-failed",
        action="store_true",
        help="run the variants an earlier run recorded as failed again",
    )
    cache_args(sp, no_cache=True)
    debug_flag(sp)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..sweep import run_sweep

    path = Path(args.sweep)
    out = Path(args.out) if args.out else path.with_name(f"{path.stem}-results")
    result = run_sweep(
        path,
        out,
        workers=args.workers,
        address=args.address,
        cache=not args.no_cache,
        cache_dir=args.cache_dir,
        cache_size=args.cache_size,
        retry_failed=args.retry_failed,
        echo=say,
    )
    return 1 if result.failed else 0
