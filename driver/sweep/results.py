"""A sweep's results: the error against the unquantized variant, the Pareto front, the
console table, ``results.csv`` / ``results.json`` and ``results.png``.

The Pareto front is over (size, error against eager, decode latency), all smaller-is-better:
a variant is on it when no other finished variant is at least as good in all three and
better in one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .measure import OUTPUTS

COLUMNS = (
    "n",
    "id",
    "label",
    "status",
    "pte_bytes",
    "decode_ms",
    "err_eager",
    "err_baseline",
    "pareto",
    "compile_s",
    "computed",
    "cached",
    "error",
    "repro",
)
_OBJECTIVES = ("pte_bytes", "err_eager", "decode_ms")


def against_baseline(results: Sequence[dict[str, Any]], baseline: dict[str, Any] | None) -> None:
    """Set ``err_baseline``: each finished variant's max abs difference from the baseline
    variant's ``.pte`` over the same steps (``driver/numerics.py``'s ``Drift``)."""
    if baseline is None or baseline.get("status") != "ok":
        return
    import torch

    from pteflow.driver.numerics import Drift

    def outputs(r: dict[str, Any]) -> Any:
        return torch.load(Path(r["pte"]).parent / OUTPUTS, weights_only=True)

    ref = outputs(baseline)
    for r in results:
        if r.get("status") == "ok":
            r["err_baseline"] = Drift.between(outputs(r), ref, baseline["label"]).abs


def mark_pareto(results: Sequence[dict[str, Any]]) -> None:
    ok = [r for r in results if r.get("status") == "ok"]
    for r in results:
        r["pareto"] = False
    for r in ok:
        mine = [r[k] for k in _OBJECTIVES]
        r["pareto"] = not any(
            all(o[k] <= m for k, m in zip(_OBJECTIVES, mine, strict=True))
            and any(o[k] < m for k, m in zip(_OBJECTIVES, mine, strict=True))
            for o in ok
            if o is not r
        )


def _counts(r: dict[str, Any]) -> None:
    passes = r.get("passes") or []
    r["computed"] = sum(not p["cached"] for p in passes)
    r["cached"] = sum(bool(p["cached"]) for p in passes)


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "pte_bytes":
        return f"{value / 2**20:.2f}M"
    if isinstance(value, bool):
        return "*" if value else ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def table(results: Sequence[dict[str, Any]]) -> str:
    """The console table (failed variants show their error and reproducer)."""
    head = ("#", "variant", "status", ".pte", "decode ms", "err eager", "err base", "pareto")
    keys = ("n", "label", "status", "pte_bytes", "decode_ms", "err_eager", "err_baseline", "pareto")
    rows = [head] + [
        (str(n), *(_fmt(k, r.get(k)) for k in keys[1:])) for n, r in enumerate(results, 1)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    for r in results:
        if r.get("status") != "ok":
            repro = f" (reproduce: driver repro {r['repro']})" if r.get("repro") else ""
            lines.append(f"failed: {r['label']}: {r.get('error')}{repro}")
    return "\n".join(lines)


def shared_work(results: Sequence[dict[str, Any]]) -> str:
    """One line: per pass, how many variants computed it and how many restored it."""
    computed: dict[str, int] = {}
    cached: dict[str, int] = {}
    for r in results:
        for p in r.get("passes") or []:
            bucket = cached if p["cached"] else computed
            bucket[p["pass"]] = bucket.get(p["pass"], 0) + 1
    shared = [n for n in computed if cached.get(n)] + [n for n in cached if n not in computed]
    if not shared:
        return "cache: no pass result was shared between variants"
    parts = [f"{n} computed {computed.get(n, 0)}x, restored {cached[n]}x" for n in shared]
    return "cache: " + "; ".join(parts)


def write(results: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """``results.csv``, ``results.json`` and ``results.png`` in ``out_dir``."""
    from pteflow.passes.emit.emit import write_atomically

    for n, r in enumerate(results, 1):
        r["n"] = n
        _counts(r)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in results:
        writer.writerow({k: r.get(k) for k in COLUMNS})
    paths = [out_dir / "results.csv", out_dir / "results.json", out_dir / "results.png"]
    write_atomically(paths[0], buf.getvalue().encode())
    write_atomically(paths[1], json.dumps(results, indent=2, default=str).encode())
    write_atomically(paths[2], plot(results))
    return paths


def plot(results: Sequence[dict[str, Any]]) -> bytes:
    """A PNG: size against error against eager, decode latency as colour, the Pareto front
    circled and joined."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    number = {id(r): n for n, r in enumerate(results, 1)}  # the table's and the CSV's "#"
    ok = [r for r in results if r.get("status") == "ok"]
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot()
    if ok:
        size = [r["pte_bytes"] / 2**20 for r in ok]
        err = [max(r["err_eager"], 1e-9) for r in ok]
        dots = ax.scatter(size, err, c=[r["decode_ms"] for r in ok], cmap="viridis", s=40)
        fig.colorbar(dots, ax=ax, label="decode latency (ms)")
        front = [(x, y) for r, x, y in zip(ok, size, err, strict=True) if r["pareto"]]
        if front:
            ax.scatter(
                [x for x, _ in front],
                [y for _, y in front],
                s=160,
                facecolors="none",
                edgecolors="red",
                label="Pareto front (size, error, latency)",
            )
            ax.legend(loc="best", fontsize=8)
        for r, x, y in zip(ok, size, err, strict=True):
            ax.annotate(
                str(number[id(r)]), (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points"
            )
        ax.set_yscale("log")
    ax.set_xlabel(".pte size (MiB)")
    ax.set_ylabel("max abs error vs eager")
    ax.set_title(f"pteflow sweep: {len(ok)} of {len(results)} variants")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
