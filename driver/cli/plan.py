"""``driver plan``: print the ordered passes and why (``pteflow.plan``)."""

from __future__ import annotations

import argparse
from typing import Any

from .args import pipeline_args, say

EXAMPLES = """\
examples:
  driver plan --passes emit,to-executorch,export,to-edge
  driver plan --pipeline xnnpack_default
  driver plan --pipeline xnnpack_default --graph plan.svg   # or .png, .dot
"""


def add_parser(sub: Any) -> None:
    plan = sub.add_parser(
        "plan",
        help="print the ordered passes and why",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Order a pipeline without running it; each pass is "
        "followed by the constraints that put it there.",
    )
    pipeline_args(plan)
    plan.add_argument(
        "--from-level",
        default="eager",
        metavar="LEVEL",
        help="the level of the input program (default: eager)",
    )
    plan.add_argument(
        "--all-reasons",
        action="store_true",
        help="also list ordering constraints implied by others (by default each pass "
        "shows the facts it waits for and its direct predecessors)",
    )
    plan.add_argument(
        "--graph",
        metavar="FILE.svg",
        help="also draw the plan: passes in run order, levels as bands, the reason on each "
        "edge (.svg or .png; .dot for Graphviz; needs the plot extra)",
    )


def main(args: argparse.Namespace) -> int:
    from ..api import plan

    if args.graph:
        from ..plot import GRAPH_SUFFIXES, check_suffix

        check_suffix(args.graph, GRAPH_SUFFIXES, "--graph")
    the_plan = plan(
        pipeline=args.pipeline,
        passes=args.passes,
        overrides=args.set,
        plugins=args.plugin,
        no_delegate=args.no_delegate,
        from_level=args.from_level,
    )
    say(the_plan.render(all_reasons=args.all_reasons))
    if args.graph:
        from pathlib import Path

        from ..plot import plan_graph

        plan_graph(the_plan, Path(args.graph))
        say(f"graph: {args.graph}")
    return 0
