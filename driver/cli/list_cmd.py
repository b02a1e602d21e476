"""``driver list passes|pipelines|backends``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .args import debug_flag, say


def add_parser(sub: Any) -> None:
    lst = sub.add_parser(
        "list",
        help="list passes, pipelines, backends or models",
        description="List what pteflow knows.",
    )
    lst.add_argument("what", choices=("passes", "pipelines", "backends", "models"))
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
    elif args.what == "models":
        _models()
    else:
        from ..backends import backend_table, backend_warnings

        for name, status in backend_table():
            say(f"{name:10s} {status}")
        for line in backend_warnings():
            sys.stderr.write(f"driver: warning: {line}\n")
    return 0


def _models() -> None:
    from ..models.hf import ARCHITECTURES

    say("model sources (driver run ...):")
    say(f"  {'(default)':28s} the built-in tiny Llama, seeded random weights")
    say(f"  {'--params P [--checkpoint C]':28s} a Meta-format Llama (params.json, .pth)")
    say(f"  {'--model MODULE:FUNCTION':28s} any module and example inputs, or a Program")
    say("  --hf DIR                     a local Hugging Face directory; architectures:")
    for arch in ARCHITECTURES.values():
        say(f"    {arch.name:26s} {arch.example}")
