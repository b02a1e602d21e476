"""``driver inspect FILE.pte``: what a .pte holds (``driver/inspect.py``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .args import say

EXAMPLES = """\
examples:
  driver inspect llama.pte                 # layout, methods, metadata, delegates, constants
  driver inspect llama.pte --json          # the same, for machines
  driver inspect --diff a.pte b.pte        # what changed: size, delegates, operators, metadata
"""


def add_parser(sub: Any) -> None:
    sp = sub.add_parser(
        "inspect",
        help="show what a .pte holds, and whether this runtime can run it",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read a .pte with ExecuTorch's own deserializer: where its bytes go "
        "(adds up to the file size), methods and their inputs/outputs, metadata constant "
        "methods, delegates (with the partition pass that made them when the run's report "
        "is beside the file), the largest constants, the operators left to kernels, and "
        "whether this machine's runtime registers them.",
    )
    sp.add_argument("files", nargs="+", metavar="FILE.pte", help="the program(s) to inspect")
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp.add_argument(
        "--diff",
        action="store_true",
        help="compare two files: A.pte B.pte (size, delegates, operators, metadata)",
    )
    sp.add_argument(
        "--top", type=int, default=10, metavar="N", help="how many constants to list (10)"
    )
    sp.add_argument("-v", "--verbose", action="store_true", help="show upstream warnings")


def main(args: argparse.Namespace) -> int:
    from pteflow.ir.errors import OptionError

    from ..inspect import inspect_pte
    from ..inspect_render import diff, render, render_diff

    if args.diff and len(args.files) != 2:
        raise OptionError(f"--diff compares two files, got {len(args.files)}: give A.pte B.pte")
    infos = [_quietly(inspect_pte, Path(f), verbose=args.verbose) for f in args.files]
    if args.diff:
        a, b = infos
        say(json.dumps(diff(a, b), indent=2) if args.json else render_diff(a, b))
        return 0
    if args.json:
        say(json.dumps(infos[0] if len(infos) == 1 else infos, indent=2))
        return 0
    say("\n\n".join(render(i, top=args.top) for i in infos))
    return 0


def _quietly(fn: Any, path: Path, *, verbose: bool) -> Any:
    """``fn(path)`` with ExecuTorch's import warnings and runtime log kept off the console
    (``-v`` shows them)."""
    if verbose:
        return fn(path)
    import tempfile

    from ..console import RunConsole

    with tempfile.TemporaryDirectory() as tmp, RunConsole(lambda _: None) as console:
        console.start(Path(tmp) / "inspect.log")
        return fn(path)
