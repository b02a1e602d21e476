"""``driver check-coverage``: which ops of a pipeline's graph a backend can take."""

from __future__ import annotations

import argparse
from typing import Any

from .args import checks_arg, model_args, model_options, pipeline_args, pipeline_options

EXAMPLES = """\
examples:
  driver check-coverage --pipeline qnn_default
  driver check-coverage --pipeline qnn_default --set split-mha-to-sha.enabled=true
  driver check-coverage --pipeline qnn_default --json coverage.json
"""


def add_parser(sub: Any) -> None:
    cov = sub.add_parser(
        "check-coverage",
        help="which ops of a pipeline's graph a backend can take, without its SDK",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a pipeline up to its partitioner (its backend's edge passes "
        "included) and report, per op, whether the backend has a builder for it. "
        "Exit 0 when every op is covered, 1 when some are not (listed first).",
    )
    pipeline_args(cov)
    model_args(cov)
    checks_arg(cov)
    cov.add_argument(
        "--json",
        metavar="PATH.json",
        help="also write the per-node coverage as JSON",
    )


def main(args: argparse.Namespace) -> int:
    from ..coverage import run_coverage
    from .args import echo

    result = run_coverage(
        pipeline_options(args),
        model_options(args),
        checks=args.checks,
        json_path=args.json,
        echo=echo,
    )
    return 1 if result.gaps else 0
