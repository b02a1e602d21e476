"""What a run says when it ends: the per-pass table, the cache and .pte lines, the
partition arbitration, the verification verdict, and what ``--no-delegate`` left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def arbitration(program: Any) -> Any:
    """Which partition pass claimed each node (None when no partition pass recorded it)."""
    from pteflow.passes.partition.arbitration import arbitration

    return arbitration(program)


def not_delegated_note(dropped: list[str]) -> str:
    """What --no-delegate left out, said plainly (the report carries it too)."""
    if not dropped:
        return "--no-delegate: the pipeline has no delegation passes; nothing was left out"
    backends = sorted({n.split("-")[-1] if n.startswith("partition-") else "" for n in dropped})
    names = ", ".join(b.upper() for b in backends if b) or "any backend"
    return (
        f"NOT DELEGATED (--no-delegate): this .pte is not {names}-delegated; it runs the "
        f"backend-prepared graph on portable kernels. Left out {len(dropped)} pass(es): "
        f"{', '.join(dropped)}"
    )


def cache_rows(stats: Any) -> list[dict[str, Any]]:
    """The pass cache's own rows (summary table and report): the time it took on the
    critical path, loading and storing; the writer thread's time is in the note."""
    if not stats:
        return []
    background = stats.get("write_s", 0.0)
    return [
        {"row": "(pass cache: load)", "wall_s": stats.get("load_s", 0.0), "note": ""},
        {
            "row": "(pass cache: store)",
            "wall_s": stats.get("store_s", 0.0),
            "note": f"+{background:.2f}s in the background" if background else "",
        },
    ]


def summary_lines(
    result: Any, pte: Path | None, verification: Any, *, detail: str = "full"
) -> list[str]:
    """The end-of-run summary: one row per pass, totals, cache, .pte, arbitration, verdict.

    ``detail``: ``"full"`` (``-v``: the per-pass table and what stayed on portable
    kernels), ``"short"`` (the progress lines already said what each pass did: totals and
    one arbitration line), ``"quiet"`` (``-q``: the .pte and the verdict).
    """
    lines = _table(result) if detail == "full" else []
    lines.extend(_totals(result, pte, verification, short=detail != "full"))
    if detail == "quiet":
        return [ln for ln in lines if ln.startswith(("wrote ", "verify"))]
    return lines


def _table(result: Any) -> list[str]:
    rows = [("pass", "time s", "ops before", "ops after", "delegated", "changed", "cached")]
    for r in result.records:
        deleg = ", ".join(f"{k}:{v}" for k, v in r.delegated.items()) or "-"
        rows.append(
            (
                f"{r.name}{r.options}",
                f"{r.wall_s:.2f}",
                str(r.ops_before),
                str(r.ops_after),
                deleg,
                "yes" if r.modified else "no",
                "cached" if getattr(r, "cached", False) else "-",
            )
        )
    for c in cache_rows(getattr(result, "cache", None)):
        rows.append((c["row"], f"{c['wall_s']:.2f}", "", "", c["note"], "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [""]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return lines


def _totals(result: Any, pte: Path | None, verification: Any, *, short: bool) -> list[str]:
    lines: list[str] = []
    stats = getattr(result, "cache", None) or {}
    cache_s = stats.get("load_s", 0.0) + stats.get("store_s", 0.0)
    total = sum(r.wall_s for r in result.records) + cache_s
    lines.append(
        f"total {total:.2f}s over {len(result.records)} passes "
        f"(scheduling {result.schedule_s * 1000:.1f} ms"
        + (
            f"; pass cache: load {stats.get('load_s', 0.0):.2f}s, "
            f"store {stats.get('store_s', 0.0):.2f}s)"
            if stats
            else ")"
        )
    )
    n_cached = sum(getattr(r, "cached", False) for r in result.records)
    if n_cached:
        lines.append(
            f"cached: {n_cached} of {len(result.records)} passes restored from the pass cache"
        )
    if pte is not None and pte.exists():
        lines.append(f"wrote {pte} ({pte.stat().st_size / 1e6:.2f} MB)")
    claimed = arbitration(result.program)
    if claimed is not None:
        text = claimed.render()
        lines.append(text.splitlines()[0] if short else text)
    if verification is not None:
        lines.append(verification.summary())
    return lines
