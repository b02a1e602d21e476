"""``run_sweep``: a sweep file in, every variant compiled and measured, results written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir.errors import UserError


@attrs.frozen
class SweepResult:
    """The finished sweep: one result dict per variant the planner accepted (grid order),
    the refused variants' lines, and the files written."""

    results: list[dict[str, Any]]
    refused: list[str]
    files: list[Path]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("status") != "ok"]


def run_sweep(
    path: str | Path,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    address: str | None = None,
    cache: bool = True,
    cache_dir: str | None = None,
    cache_size: str = "10G",
    retry_failed: bool = False,
    echo: Callable[[str], None] = lambda line: None,
) -> SweepResult:
    """Run the sweep file ``path``, writing into ``out_dir``; ``echo`` gets one line per
    event (refusals, each variant as it ends, the table).

    Raises:
        UserError: Ray or matplotlib missing; a malformed sweep file; no valid variant;
            an output directory or cache that cannot be written.
    """
    from . import grid
    from . import results as res
    from .runner import cache_options, require_extra, run_variants

    require_extra()
    spec = grid.load_spec(path)
    if workers is not None and workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    variants = spec.variants()
    refused: list[str] = []

    def refuse(line: str) -> None:
        refused.append(line)
        echo(line)

    planned = grid.plan_variants(spec, variants, refuse)
    if not planned:
        raise UserError(f"sweep {Path(path).name}: no valid variant ({len(variants)} refused)")
    baseline = _baseline(spec, planned)
    out = Path(out_dir).resolve()
    try:
        (out / "variants").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the sweep's results to {out}: {e.strerror}") from None
    caching = cache_options(cache, cache_dir, cache_size)
    if cache:
        from pteflow.passes.cache import PassCache, parse_size

        PassCache(caching["directory"], max_bytes=parse_size(cache_size)).check_writable()
    echo(
        f"sweep: {len(planned)} variant(s)"
        + (f", {len(refused)} refused" if refused else "")
        + (f"; baseline {baseline.variant.label}" if baseline else "")
    )

    def on_result(r: dict[str, Any], resumed: bool) -> None:
        how = "finished earlier" if resumed else r["status"]
        tail = f": {r['error']}" if r.get("status") != "ok" else ""
        echo(f"[{how}] {r['label']}{tail}")

    results = run_variants(
        spec,
        planned,
        out,
        cache=caching,
        workers=workers,
        address=address,
        retry_failed=retry_failed,
        on_result=on_result,
    )
    base = next((r for r in results if baseline and r["id"] == baseline.variant.id), None)
    res.against_baseline(results, base)
    res.mark_pareto(results)
    files = res.write(results, out)
    echo(res.table(results))
    echo(res.shared_work(results))
    echo("results: " + ", ".join(str(f) for f in files))
    return SweepResult(results, refused, files)


def _baseline(spec: Any, planned: list[Any]) -> Any:
    """The unquantized variant errors are compared with: the sweep's ``baseline`` (a
    pipeline or a variant label), else the first variant no pass quantizes."""
    if spec.baseline is None:
        return next((p for p in planned if not p.quantized), None)
    for p in planned:
        if spec.baseline in (p.variant.label, p.variant.pipeline, p.variant.id):
            return p
    raise UserError(
        f"sweep: baseline {spec.baseline!r} is not one of its variants: "
        + ", ".join(p.variant.label for p in planned)
    )
