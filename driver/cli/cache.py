"""``driver cache info|clear``: the pass-result cache."""

from __future__ import annotations

import argparse
from typing import Any

from .args import cache_args, cache_options, debug_flag, say, warn

EXAMPLES = """\
examples:
  driver cache info
  driver cache info --cache-dir /tmp/pteflow-cache
  driver cache clear
  driver run --pipeline xnnpack_default --no-cache
"""


def add_parser(sub: Any) -> None:
    cache = sub.add_parser(
        "cache",
        help="show or clear the pass-result cache",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="driver run stores each cacheable pass's result, keyed by its input, "
        "options, source code and the torch/executorch/torchao/pteflow versions, and "
        "starts the next run after the longest cached prefix of its passes.",
    )
    cache.add_argument(
        "action",
        choices=("info", "clear"),
        help="info: entries, size, hit rate of the last run; clear: delete every entry",
    )
    cache_args(cache)
    debug_flag(cache)


def main(args: argparse.Namespace) -> int:
    from ..resolve import open_cache

    cache = open_cache(cache_options(args), warn)
    if args.action == "clear":
        n = cache.clear()
        say(f"removed {n} entries from {cache.directory}")
        return 0
    info = cache.info()
    say(f"cache: {info.directory}")
    say(f"entries: {info.entries}")
    say(f"total size: {info.total_bytes / 2**20:.2f} MiB (cap {info.max_bytes / 2**30:.2f} GiB)")
    say(
        f"blobs: {info.blobs} ({info.blob_bytes / 2**20:.2f} MiB of tensors and delegate "
        f"data, stored once); shared: {info.shared_bytes / 2**20:.2f} MiB the entries "
        "refer to more than once, not stored again"
    )
    if info.linked:
        say(
            f"links: {info.linked} blobs ({info.linked_bytes / 2**20:.2f} MiB) are read in place "
            "from the memory-mapped files they came from (a checkpoint), not copied"
        )
    last = info.last_run
    if last:
        say(
            f"last run: hit rate {last['hit_rate']:.0%} ({last['hits']} of "
            f"{last['cacheable']} cacheable passes restored, {last['stored']} stored; "
            f"load {last.get('load_s', 0):.1f}s, store {last.get('store_s', 0):.1f}s)"
        )
        for note in last.get("notes", []):
            say(f"  note: {note}")
    else:
        say("last run: none recorded")
    return 0
