"""What storing the pass results costs a cold run, from the bench's paired runs.

``bench_export`` runs pteflow with the cache (empty directory) and with ``--no-cache`` in
rounds, one run of each back to back (``run_order``). On a noisy machine one pass of one
run can take 20% longer than the same pass of the next run with no change in between
(SmolLM2-135M on the Xeon VM: export 29.1 s against 23.4 s, to-executorch 15.3 against
17.7), so medians of each kind taken separately, over three runs, cannot tell a 5% cost
from the machine. The cost is taken within each round instead, like the decode ratio
(``decode.py``): the round's cache wall over its no-cache wall, the median over rounds
with its order-statistic 95% interval, and, to show where a cost comes from, the
median over rounds of each pass's difference and of the time outside the passes
(imports, loading, the cache's own store rows, writing the report).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.decode import MedianRatio, interval_cell

#: Passes whose median difference is smaller than this (seconds) are left out of the row.
SHOWN_FROM_S = 0.1


@dataclass
class CacheCost(MedianRatio):
    """Cache run over no-cache run, round by round."""

    ratios: list[float]
    #: median over rounds of (cache - no-cache) seconds, per pass and "outside passes"
    by_part: dict[str, float] = field(default_factory=dict)

    def parts(self) -> dict[str, float]:
        """The parts whose median difference is at least ``SHOWN_FROM_S``, largest first."""
        shown = {k: round(v, 2) for k, v in self.by_part.items() if abs(v) >= SHOWN_FROM_S}
        return dict(sorted(shown.items(), key=lambda kv: -abs(kv[1])))


def run_parts(report: dict[str, Any], wall_s: float) -> dict[str, float]:
    """One run's seconds by part: each pass (by name, in the report's order) and what is
    outside them (the subprocess's wall less the passes)."""
    parts: dict[str, float] = {}
    for p in report["passes"]:
        parts[p["name"]] = parts.get(p["name"], 0.0) + p["wall_s"]
    parts["outside passes"] = wall_s - sum(parts.values())
    return parts


def cache_cost(cached: Sequence[dict], bare: Sequence[dict]) -> CacheCost:
    """The cost from runs paired by round (``cached[i]`` ran beside ``bare[i]``); each
    run a dict with ``wall_s`` and ``parts`` (``run_parts``)."""
    if not cached or len(cached) != len(bare):
        raise ValueError(f"runs do not pair: {len(cached)} with the cache, {len(bare)} without")
    ratios = [c["wall_s"] / b["wall_s"] for c, b in zip(cached, bare, strict=True)]
    names = [n for n in cached[0]["parts"] if all(n in r["parts"] for r in (*cached, *bare))]
    by_part = {
        n: statistics.median(
            c["parts"][n] - b["parts"][n] for c, b in zip(cached, bare, strict=True)
        )
        for n in names
    }
    return CacheCost(ratios, by_part)


def cell(row: dict[str, Any]) -> str:
    """The table's cell: ``1.03 (0.98-1.08)``, or ``1.03 (one round)`` (``--repeat 1``)."""
    interval = row.get("cache_cost_interval") or ()
    return interval_cell(row.get("cache_cost"), interval, row.get("cache_cost_rounds", 0))
