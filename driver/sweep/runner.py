"""Run a sweep's variants as Ray tasks, sharing the pass cache, resuming what is finished.

Ray starts inside the command (``num_cpus`` workers, no dashboard, its files in a temporary
folder removed afterwards) unless ``address`` names a running cluster. Each variant is one
task (``measure.compile_variant``; one CPU, never retried).

Sharing: workers use one cache directory, the same path for every worker (a shared file
system across machines). The cache is safe for that: an entry is written to a temporary
file and renamed into place (readers see a whole entry or none), and every entry is
authenticated with the user's key, so all workers must run as the same user with the same
``~/.config/pteflow/secret.key`` (a worker with another key drops the entries and
recomputes: correct, but nothing is shared). Entries are not moved through Ray's object
store: they are up to gigabytes, and the file system lets the cache hit across sweeps.

So that a shared prefix is computed once rather than by two workers at the same time, a
variant waits for the earlier variant it shares the most stored pass results with
(``grid.parents``); variants that share nothing start at once.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pteflow.ir.errors import UserError

from .grid import Planned, SweepSpec, parents
from .measure import RESULT, write_result

INSTALL = "pip install 'pteflow[sweep]'"


def require_extra() -> None:
    """Refuse (UserError) when Ray or matplotlib is not importable."""
    for module in ("ray", "matplotlib"):
        try:
            __import__(module)
        except ImportError:
            raise UserError(f"driver sweep needs {module}: {INSTALL}") from None


def finished(vdir: Path, planned: Planned, retry_failed: bool) -> dict[str, Any] | None:
    """The recorded result of a variant an earlier run finished, or None."""
    try:
        result = json.loads((vdir / RESULT).read_text())
    except (OSError, ValueError):
        return None
    v = planned.variant
    same = result.get("pipeline") == v.pipeline and result.get("overrides") == list(v.overrides)
    if not same or (retry_failed and result.get("status") != "ok"):
        return None
    return result


def run_variants(
    spec: SweepSpec,
    planned: Sequence[Planned],
    out_dir: Path,
    *,
    cache: dict[str, Any],
    workers: int | None,
    address: str | None,
    retry_failed: bool = False,
    on_result: Callable[[dict[str, Any], bool], None] = lambda r, resumed: None,
) -> list[dict[str, Any]]:
    """Every planned variant's result, in grid order (``on_result`` hears each as it ends;
    ``resumed`` when an earlier run had finished it)."""
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for p in planned:
        done = finished(out_dir / "variants" / p.variant.id, p, retry_failed)
        if done is not None:
            results[p.variant.id] = done
            on_result(done, True)
        else:
            todo.append(p)
    if todo:
        _run_on_ray(spec, planned, todo, out_dir, cache, workers, address, results, on_result)
    return [results[p.variant.id] for p in planned]


def _task(spec: SweepSpec, p: Planned, out_dir: Path, cache: dict[str, Any]) -> dict[str, Any]:
    v = p.variant
    return {
        "id": v.id,
        "label": v.label,
        "pipeline": v.pipeline,
        "overrides": list(v.overrides),
        "dir": str(out_dir / "variants" / v.id),
        "model": spec.model,
        "plugins": list(spec.plugins),
        "cache": cache,
        "warmup": spec.warmup,
        "runs": spec.runs,
    }


def _run_on_ray(
    spec: SweepSpec,
    planned: Sequence[Planned],
    todo: list[Planned],
    out_dir: Path,
    cache: dict[str, Any],
    workers: int | None,
    address: str | None,
    results: dict[str, dict[str, Any]],
    on_result: Callable[[dict[str, Any], bool], None],
) -> None:
    import ray

    from .measure import compile_variant

    waits_for = parents(planned)
    temp = None
    if address is None:
        temp = tempfile.mkdtemp(prefix="pteflow-ray-")
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp,
            configure_logging=False,
        )
    else:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise UserError(
                f"cannot join the Ray cluster at {address} ({type(e).__name__}: {first}); "
                "start one with 'ray start --head', or leave out --address to run locally"
            ) from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(compile_variant)
        running: dict[Any, Planned] = {}
        pending = list(todo)
        while pending or running:
            for p in list(pending):
                parent = waits_for[p.variant.id]
                if parent is None or parent in results:
                    running[remote.remote(_task(spec, p, out_dir, cache))] = p
                    pending.remove(p)
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                p = running.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as e:  # the worker died (a crash in native code)
                    result = _crashed(p, e)
                    write_result(out_dir / "variants" / p.variant.id, result)
                results[p.variant.id] = result
                on_result(result, False)
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _crashed(p: Planned, e: BaseException) -> dict[str, Any]:
    v = p.variant
    text = (str(e).strip().splitlines() or [""])[0][:300]
    return {
        "id": v.id,
        "label": v.label,
        "pipeline": v.pipeline,
        "overrides": list(v.overrides),
        "status": "failed",
        "error": f"the worker died: {type(e).__name__}: {text}",
        "repro": None,
    }


def cache_options(enabled: bool, directory: str | None, size: str) -> dict[str, Any]:
    """The workers' cache options: an absolute directory, the same for every worker."""
    from pteflow.passes.cache.settings import default_cache_dir

    path = Path(directory) if directory else default_cache_dir()
    return {"enabled": enabled, "directory": str(path.resolve()), "size": size}
