"""``driver bisect``: the first pass that drifts beyond a tolerance or fails."""

from __future__ import annotations

import argparse
from typing import Any

from .args import model_args, model_options, pipeline_args, pipeline_options, say

EXAMPLES = """\
examples:
  driver bisect --pipeline xnnpack_default --tol 1e-4
  driver bisect --pipeline my_pipeline.toml --tol 1e-3 --plugin my_passes.py
  driver bisect --model mypkg.models:build --passes export,my-pass,to-edge --tol 1e-5

Runs prefixes of the planned pass order on a fresh copy of the model and
binary-searches for the first pass whose output drifts beyond --tol (max abs
difference to eager, or to the output of the last quantization pass) or that
raises / breaks an invariant; prints it with the diff of its input and output.
"""


def add_parser(sub: Any) -> None:
    bis = sub.add_parser(
        "bisect",
        help="find the first pass that drifts beyond a tolerance or fails",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Binary-search the pipeline's planned pass order for the first pass "
        "whose output drifts numerically or breaks an invariant.",
    )
    pipeline_args(bis)
    model_args(bis)
    bis.add_argument(
        "--tol",
        type=float,
        metavar="X",
        help="the largest max-abs output difference that is not a drift (required)",
    )
    bis.add_argument(
        "--checks",
        choices=("each", "boundaries", "off"),
        default="each",
        help="invariant checks while probing (default: each, so the breaking pass is named)",
    )


def main(args: argparse.Namespace) -> int:
    from ..bisect import run_bisect

    def on_probe(p: Any) -> None:
        state = "BAD" if p.bad else "good" if p.evaluable else "not evaluable"
        say(f"probe: first {p.k} passes: {state}")

    result = run_bisect(
        pipeline_options(args),
        model_options(args),
        tol=args.tol,
        checks=args.checks,
        on_probe=on_probe,
    )
    say(result.render())
    return 1 if result.first_bad is not None else 0
