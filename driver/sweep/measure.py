"""One variant, in a worker: compile it with ``pteflow.compile``, then measure its ``.pte``.

``compile_variant(task)`` never raises for a variant that fails: the failure (one line, and
the reproducer's directory when a pass failed) is its result. Every result is written
atomically to ``<variant dir>/result.json`` before it is returned, so an interrupted sweep
knows which variants are finished.

Measured: the ``.pte``'s size; decode latency in ``executorch.runtime`` (the model's last
verification step, ``warmup`` untimed calls, then the median of ``runs`` timed ones); the
error against eager PyTorch over the model's verification steps (``driver/numerics.py``'s
``Drift``); the outputs themselves (``outputs.pt``), so the sweep can compare every variant
with the unquantized one afterwards.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

RESULT = "result.json"
OUTPUTS = "outputs.pt"


def _line(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [""])[0][:300]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def write_result(vdir: Path, result: dict[str, Any]) -> None:
    from pteflow.passes.emit.emit import write_atomically

    write_atomically(vdir / RESULT, json.dumps(result, indent=2, default=str).encode())


def compile_variant(task: dict[str, Any]) -> dict[str, Any]:
    """Compile and measure one variant; see the module docstring. ``task`` holds plain
    data (it crosses to a Ray worker): the variant, the model, the cache, the counts."""
    from pteflow.driver.api import compile as compile_
    from pteflow.driver.options import CacheOptions, DebugOptions
    from pteflow.ir.errors import InvariantError, PassFailedError, UserError

    vdir = Path(task["dir"])
    vdir.mkdir(parents=True, exist_ok=True)
    model = task["model"]
    result: dict[str, Any] = {
        "id": task["id"],
        "label": task["label"],
        "pipeline": task["pipeline"],
        "overrides": list(task["overrides"]),
        "status": "failed",
        "error": None,
        "repro": None,
    }
    t0 = time.perf_counter()
    pte = vdir / "model.pte"
    try:
        compiled = compile_(
            model["source"],
            pipeline=task["pipeline"],
            overrides=task["overrides"],
            plugins=task["plugins"],
            params=model["params"],
            checkpoint=model["checkpoint"],
            max_seq_len=model["max_seq_len"],
            max_context_len=model["max_context_len"],
            output=pte,
            cache=CacheOptions(**task["cache"]),
            debug=DebugOptions(repro_dir=str(vdir / "repro")),
        )
    except (UserError, PassFailedError, InvariantError) as e:
        where = getattr(e, "repro_dir", None)
        result.update(error=str(e).splitlines()[0], repro=str(where) if where else None)
    except Exception as e:  # a crash in a variant is its result, never the sweep's end
        result.update(error=_line(e))
    else:
        result["compile_s"] = time.perf_counter() - t0
        result["passes"] = [
            {"pass": r.name, "cached": bool(getattr(r, "cached", False)), "wall_s": r.wall_s}
            for r in compiled.records
        ]
        v = compiled.verification
        result["verify"] = v.status if v is not None else "off"
        if not compiled.ok:
            result["error"] = f"verification failed: {v.why_failed()}"
        else:
            try:
                result.update(_measure(compiled, task, vdir))
                result["status"] = "ok"
            except Exception as e:
                result["error"] = f"measuring the .pte failed: {_line(e)}"
    result["wall_s"] = time.perf_counter() - t0
    write_result(vdir, result)
    return result


def _measure(compiled: Any, task: dict[str, Any], vdir: Path) -> dict[str, Any]:
    import torch

    from pteflow.driver.models import LoadedModel
    from pteflow.driver.numerics import Drift, eager_outputs, evaluate
    from pteflow.driver.options import ModelOptions
    from pteflow.driver.pipelines import load
    from pteflow.driver.resolve import load_model

    pte: Path = compiled.pte
    model: LoadedModel = load_model(ModelOptions(**task["model"]), load(task["pipeline"]))
    got = evaluate(compiled.program, model.steps)
    torch.save(got, vdir / OUTPUTS)
    vs_eager = Drift.between(got, eager_outputs(model.reference, model.steps))
    return {
        "pte": str(pte),
        "pte_bytes": pte.stat().st_size,
        "decode_ms": decode_ms(pte.read_bytes(), model.steps[-1], task["warmup"], task["runs"]),
        "err_eager": vs_eager.abs,
        "rel_err_eager": vs_eager.rel,
        "nonfinite_eager": vs_eager.nonfinite,
    }


def decode_ms(data: bytes, step: tuple[str, tuple[Any, ...]], warmup: int, runs: int) -> float:
    """The median wall time of one call of ``step`` in ``executorch.runtime``, in ms."""
    import statistics

    from torch.utils._pytree import tree_flatten

    from pteflow.ir.evaluate import load_runtime_program

    loaded = load_runtime_program(data)
    method = loaded.load_method(step[0])
    inputs = list(tree_flatten(tuple(step[1]))[0])
    for _ in range(warmup):
        method.execute(inputs)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        method.execute(inputs)
        times.append((time.perf_counter() - t) * 1e3)
    del method, loaded
    return statistics.median(times)
