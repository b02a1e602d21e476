"""``driver repro DIR``: re-run a failing pass from the reproducer a failing run wrote."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .args import debug_flag, say

EXAMPLES = """\
examples:
  driver repro pteflow-repro/004-to-edge
  driver repro --debug pteflow-repro/004-to-edge     # with the traceback

A failing 'driver run' writes the directory (see --repro-dir) and prints this
command. It rebuilds the failing pass's input, replays the passes recorded
before it, runs the pass with the same checks and compares the error. Exit 1:
the failure reproduced; exit 0: it no longer does.
"""


def add_parser(sub: Any) -> None:
    rep = sub.add_parser(
        "repro",
        help="re-run a failing pass from its reproducer directory",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Re-run exactly the pass that failed, on its recorded input.",
    )
    rep.add_argument("dir", metavar="DIR", help="a reproducer directory a failing run wrote")
    rep.add_argument(
        "--trust",
        action="store_true",
        help="replay a reproducer your key does not authenticate (someone else's, or "
        "edited): its files are unpickled, so only for one you have read",
    )
    debug_flag(rep, "show the traceback")


def main(args: argparse.Namespace) -> int:
    from ..repro import load, replay

    directory, trust = Path(args.dir), bool(args.trust)
    info = load(directory, trust=trust)
    say(
        f"replaying {info['pass_described']} on the input in {args.dir} "
        f"({len(info['replay'])} pass(es) replayed first)"
    )
    got = replay(directory, trust=trust)
    if got.error is not None and getattr(args, "debug", False):
        raise got.error
    if got.reproduced:
        say(f"reproduced in {got.seconds:.2f}s: {got.got}")
        return 1
    if got.got is None:
        say(f"did not reproduce: the pass now runs cleanly (expected {got.expected})")
        return 0
    say(f"a different failure: {got.got}\n  (recorded: {got.expected})")
    return 1
