"""``driver sweep``: compile and measure a grid of variants of one model on Ray.

``grid`` reads the sweep file, expands it and plans every variant (refusing what the
planner refuses); ``runner`` runs the variants as Ray tasks sharing the pass cache and
resumes what an earlier run finished; ``measure`` compiles and measures one variant in a
worker; ``results`` writes the table, CSV, JSON and plot. ``run_sweep`` ties them together.
"""

from __future__ import annotations

from .sweep import SweepResult, run_sweep

__all__ = ["SweepResult", "run_sweep"]
