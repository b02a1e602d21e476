"""Pictures: the scheduled plan as a graph, and numeric drift per pass.

``plan_graph(plan, path)``: ``driver plan --graph FILE.svg|png|dot``. Nodes are the passes
in run order, edges the direct ordering constraints (the transitive reduction; the reason
on each edge), and the passes sit in horizontal bands by the level they read. ``.svg`` and
``.png`` are drawn with networkx + matplotlib; ``.dot`` is written through networkx's
pydot bridge (for Graphviz users).

``plot_numerics(rows, tolerance, path)``: ``driver run --track-numerics --plot FILE.png``:
the max abs error against eager (and against the baseline a lossy pass set) after every
pass, log scale, with the tolerance line.

Both need the ``plot`` extra (``pip install 'pteflow[plot]'``: matplotlib, pydot); without
it they raise a UserError saying so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the image formats --graph / --plot write
GRAPH_SUFFIXES = (".svg", ".png", ".dot")
PLOT_SUFFIXES = (".png", ".svg")


def check_suffix(path: str, allowed: Sequence[str], flag: str) -> None:
    """Refuse an image path whose suffix we cannot write (before any work).

    Raises:
        OptionError: the suffix is not one of ``allowed``.
    """
    if Path(path).suffix.lower() not in allowed:
        from pteflow.ir.errors import OptionError

        raise OptionError(
            f"{flag} {path}: cannot write a {Path(path).suffix or 'suffix-less'} file; "
            f"use one of {', '.join(allowed)}"
        )


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only; never open a window
        matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text (searchable)
        import matplotlib.pyplot as plt
    except ImportError:
        from pteflow.ir.errors import UnavailableError

        raise UnavailableError(
            "drawing needs matplotlib: pip install 'pteflow[plot]' (scripts/env.sh installs it)"
        ) from None
    return plt


def plan_digraph(plan: Any) -> Any:
    """The plan as a ``networkx.DiGraph``: node = run rank, attributes ``label``, ``level``;
    edge attribute ``reason`` (the direct constraints only)."""
    import networkx as nx

    rank_of = {pos: rank for rank, pos in enumerate(plan.order, 1)}
    g = nx.DiGraph()
    for rank, pos in enumerate(plan.order, 1):
        p = plan.passes[pos]
        g.add_node(rank, label=f"{rank}. {p.describe()}", level=p.contract.level_in.label)
    for u, v in sorted(plan.direct_edges()):
        reasons = plan.reasons.get((u, v), ())
        g.add_edge(rank_of[u], rank_of[v], reason="; ".join(reasons))
    return g


def plan_graph(plan: Any, path: Path) -> None:
    """Draw (or, for ``.dot``, write) the plan's graph to ``path``."""
    g = plan_digraph(plan)
    if path.suffix.lower() == ".dot":
        _write_dot(g, path)
        return
    plt = _pyplot()
    levels: list[str] = []
    for _, data in g.nodes(data=True):
        if data["level"] not in levels:
            levels.append(data["level"])
    per_band: dict[str, int] = {}
    pos = {}
    for node, data in g.nodes(data=True):  # run order, left to right within a band
        band = levels.index(data["level"])
        pos[node] = (float(node), -2.0 * band - 0.6 * (per_band.get(data["level"], 0) % 2))
        per_band[data["level"]] = per_band.get(data["level"], 0) + 1
    n = g.number_of_nodes()
    fig, ax = plt.subplots(figsize=(max(8.0, 2.2 * n), 2.2 + 2.0 * len(levels)))
    for band, level in enumerate(levels):
        ax.axhspan(-2.0 * band - 1.0, -2.0 * band + 0.4, color=f"C{band}", alpha=0.12)
        ax.text(0.2, -2.0 * band + 0.2, level, fontsize=11, weight="bold", va="center")
    import networkx as nx

    nx.draw_networkx_edges(
        g,
        pos,
        ax=ax,
        arrows=True,
        arrowsize=14,
        edge_color="#555555",
        connectionstyle="arc3,rad=0.15",
        node_size=2400,
    )
    labels = {k: _wrap(d["label"], 22) for k, d in g.nodes(data=True)}
    box = {"boxstyle": "round,pad=0.4", "fc": "white", "ec": "#333333"}
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=7, bbox=box)
    edge_labels = {(u, v): _wrap(d["reason"], 30) for u, v, d in g.edges(data=True)}
    nx.draw_networkx_edge_labels(
        g, pos, edge_labels=edge_labels, ax=ax, font_size=6, connectionstyle="arc3,rad=0.15"
    )
    ax.set_axis_off()
    ax.set_title("pteflow plan: passes in run order, levels as bands, a reason on each edge")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:4]) or text


def _write_dot(g: Any, path: Path) -> None:
    try:
        from networkx.drawing.nx_pydot import write_dot
    except ImportError:  # pragma: no cover - networkx always has it
        write_dot = None
    h = g.copy()
    for _, data in h.nodes(data=True):
        data["label"] = '"' + data["label"].replace('"', "'") + '"'
        data["level"] = '"' + data["level"] + '"'
    for _, _, data in h.edges(data=True):
        data["label"] = '"' + data.pop("reason").replace('"', "'") + '"'
    try:
        import pydot  # noqa: F401
    except ImportError:
        write_dot = None
    if write_dot is None:
        from pteflow.ir.errors import UnavailableError

        raise UnavailableError("writing .dot needs pydot: pip install 'pteflow[plot]'")
    write_dot(h, str(path))


def plot_numerics(rows: Sequence[Any], tolerance: float, path: Path) -> None:
    """Draw ``--track-numerics`` rows: error per pass (log scale) and the tolerance."""
    plt = _pyplot()
    names = [r.pass_ for r in rows]
    floor = 1e-12  # log scale: an exact match is drawn at the floor

    def values(attr: str) -> list[float]:
        out = []
        for r in rows:
            d = getattr(r, attr)
            v = d.abs if d is not None and math.isfinite(d.abs) else math.nan
            out.append(max(v, floor) if not math.isnan(v) else math.nan)
        return out

    x = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(max(7.0, 0.7 * len(rows) + 3), 4.5))
    ax.plot(x, values("vs_eager"), "o-", label="max abs error vs eager")
    baseline = values("vs_baseline")
    if any(r.baseline != "eager" for r in rows):
        ax.plot(x, baseline, "s--", label="vs baseline (last lossy pass)")
    ax.axhline(max(tolerance, floor), color="red", linestyle=":", label=f"tolerance {tolerance:g}")
    bad = [i for i, r in enumerate(rows) if r.over]
    if bad:
        ax.plot(
            bad,
            [baseline[i] if not math.isnan(baseline[i]) else floor for i in bad],
            "rx",
            markersize=12,
            label="beyond tolerance",
        )
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([n.split("{")[0] for n in names], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("max abs difference")
    ax.set_title("numeric drift per pass (--track-numerics)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
