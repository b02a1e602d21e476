"""``driver list passes|pipelines|backends``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .args import debug_flag, say


def add_parser(sub: Any) -> None:
    lst = sub.add_parser(
        "list", help="list passes, pipelines or backends", description="List what pteflow knows."
    )
    lst.add_argument("what", choices=("passes", "pipelines", "backends"))
    debug_flag(lst)


def main(args: argparse.Namespace) -> int:
    if args.what == "passes":
        from pteflow.passes.registry import load_registry

        for name, cls in sorted(load_registry().items()):
            info = cls.info
            lv = (
                info.level_in.label
                if not info.is_conversion
                else f"{info.level_in.label}->{info.level_out.label}"
            )
            say(f"{name:28s} [{lv}] {cls.doc()}")
            for label, facts in (
                ("requires", info.requires),
                ("provides", info.provides),
                ("invalidates", info.invalidates),
            ):
                if facts:
                    say(f"{'':28s}   {label}: {', '.join(sorted(f.name for f in facts))}")
    elif args.what == "pipelines":
        from ..pipelines import named_pipelines

        for name, desc in named_pipelines().items():
            say(f"{name:24s} {desc}")
    else:
        from ..backends import backend_table, backend_warnings

        for name, status in backend_table():
            say(f"{name:10s} {status}")
        for line in backend_warnings():
            sys.stderr.write(f"driver: warning: {line}\n")
    return 0
