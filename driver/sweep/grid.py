"""A sweep file, its grid of variants, and which variants the planner refuses.

    model = "tiny-llama"               # optional; or "MODULE:FUNCTION", or params/checkpoint
    pipelines = ["xnnpack_default", "portable_default"]   # named pipelines or .toml files
    plugins = ["my_passes.py"]         # optional: modules or files whose passes join in
    baseline = "xnnpack_default"       # optional: the unquantized variant errors are
                                       # compared with (default: the first variant that
                                       # no pass quantizes)

    [axes]                             # every combination of values, per pipeline
    "quantize-8da4w.group_size" = [32, 64, 128]        # PASS.OPTION = values
    "to-executorch" = [{ const_prop = true }, { sym_shape_eval = "upper-bound" }]  # PASS = tables

    [measure]
    warmup = 3                         # untimed decode calls before timing
    runs = 10                          # timed decode calls (the median is reported)

An axis applies to the pipelines that have its pass; the others do not multiply by it.
Each variant is a pipeline plus ``--set`` overrides, planned (``pteflow.plan``) before any
work: a refused variant is one line with the planner's reason, and the sweep goes on.
"""

from __future__ import annotations

import hashlib
import itertools
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir.errors import UserError

_KEYS = {
    "model",
    "params",
    "checkpoint",
    "max_seq_len",
    "max_context_len",
    "pipelines",
    "plugins",
    "baseline",
    "axes",
    "measure",
}
_MEASURE = {"warmup": 3, "runs": 10}


@attrs.frozen
class Variant:
    """One pipeline with ``--set`` overrides; ``id`` names its directory (stable across
    runs of the same sweep, so an interrupted sweep finds what it finished)."""

    pipeline: str
    overrides: tuple[str, ...]
    id: str
    label: str


@attrs.frozen
class Planned:
    """A variant the planner accepted: its passes in run order and their cache chain."""

    variant: Variant
    ordered: tuple[Any, ...]
    quantized: bool
    stored_keys: tuple[str, ...]  # chain keys of the passes whose results the cache stores


@attrs.frozen
class SweepSpec:
    """A parsed sweep file; paths in it are made absolute against the file's folder."""

    path: Path
    model: dict[str, Any]  # ModelOptions' fields: source, params, checkpoint, ...
    pipelines: tuple[str, ...]
    plugins: tuple[str, ...]
    axes: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]  # (axis, override sets)
    baseline: str | None
    warmup: int
    runs: int

    def variants(self) -> list[Variant]:
        """Every pipeline times every combination of the axes that apply to it."""
        from pteflow.driver.pipelines import load

        out: list[Variant] = []
        seen: set[tuple[str, tuple[str, ...]]] = set()
        passes = {p: {s.name for s in load(p).passes} for p in self.pipelines}
        everywhere = set().union(*passes.values())
        for axis, _ in self.axes:
            if axis.split(".")[0] not in everywhere:
                from pteflow.ir.errors import UnknownNameError

                raise UnknownNameError(
                    f"pass (axis {axis!r} of sweep {self.path.name}; not in its pipelines)",
                    axis.split(".")[0],
                    everywhere,
                )
        for pipeline in self.pipelines:
            names = passes[pipeline]
            applying = [sets for axis, sets in self.axes if axis.split(".")[0] in names]
            for combo in itertools.product(*applying):
                overrides = tuple(o for group in combo for o in group)
                if (pipeline, overrides) in seen:
                    continue
                seen.add((pipeline, overrides))
                out.append(self._variant(pipeline, overrides))
        return out

    def _variant(self, pipeline: str, overrides: tuple[str, ...]) -> Variant:
        ident = repr((pipeline, overrides, sorted(self.model.items())))
        digest = hashlib.sha256(ident.encode()).hexdigest()[:10]
        stem = Path(pipeline).stem if pipeline.endswith(".toml") else pipeline
        label = " ".join((stem, *overrides))
        return Variant(pipeline, overrides, f"{stem}-{digest}", label)


def _value(value: Any, where: str) -> str:
    """An axis value as ``--set`` text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise UserError(f"{where}: values are booleans, numbers or strings, got {value!r}")


def _axis(name: str, values: Any, where: str) -> tuple[tuple[str, ...], ...]:
    """An axis's values as override sets: ``PASS.OPTION = [v, ...]`` or
    ``PASS = [{OPTION = v, ...}, ...]``."""
    if not isinstance(values, list) or not values:
        raise UserError(f"{where}: axis {name!r} must be a non-empty list of values")
    if "." in name:
        return tuple((f"{name}={_value(v, where)}",) for v in values)
    sets = []
    for v in values:
        if not isinstance(v, dict):
            raise UserError(
                f"{where}: axis {name!r} names a pass: its values are tables of options "
                f"({name!r} = [{{ option = value }}, ...]); or use '{name}.OPTION'"
            )
        sets.append(tuple(f"{name}.{k}={_value(x, where)}" for k, x in v.items()))
    return tuple(sets)


def load_spec(path: str | Path) -> SweepSpec:
    """Parse a sweep file.

    Raises:
        UserError: the file is missing or malformed, a key is unknown, no pipeline given.
    """
    from pteflow.ir.errors import UnknownNameError

    p = Path(path)
    where = f"sweep {p.name}"
    try:
        data = tomllib.loads(p.read_text())
    except OSError as e:
        raise UserError(f"cannot read sweep file {p}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: not valid TOML ({e})") from None
    for key in data:
        if key not in _KEYS:
            raise UnknownNameError(f"{where}: key", key, sorted(_KEYS))
    pipelines = data.get("pipelines")
    if isinstance(pipelines, str):
        pipelines = [pipelines]
    if not pipelines or not all(isinstance(x, str) for x in pipelines):
        raise UserError(f'{where}: give pipelines = ["NAME" or "FILE.toml", ...]')
    base = p.parent.resolve()

    def here(value: Any) -> Any:  # a file named in the sweep, against the sweep's folder
        if isinstance(value, str) and (value.endswith((".toml", ".json", ".pth", ".py"))):
            return str((base / value).resolve()) if not Path(value).is_absolute() else value
        return value

    model = {
        "source": _source(data.get("model"), base),
        "params": here(data.get("params")),
        "checkpoint": here(data.get("checkpoint")),
        "max_seq_len": data.get("max_seq_len"),
        "max_context_len": data.get("max_context_len"),
    }
    axes_table = data.get("axes", {})
    if not isinstance(axes_table, dict):
        raise UserError(f"{where}: [axes] must be a table of PASS.OPTION = [values]")
    measure = data.get("measure", {})
    for key in measure:
        if key not in _MEASURE:
            raise UnknownNameError(f"{where}: [measure] key", key, sorted(_MEASURE))
    counts = {k: measure.get(k, d) for k, d in _MEASURE.items()}
    for k, v in counts.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < (1 if k == "runs" else 0):
            raise UserError(f"{where}: [measure] {k} must be an integer >= 1, got {v!r}")
    plugins = data.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(x, str) for x in plugins):
        raise UserError(f'{where}: give plugins = ["MODULE" or "FILE.py", ...]')
    return SweepSpec(
        path=p,
        model=model,
        pipelines=tuple(here(x) for x in pipelines),
        plugins=tuple(here(x) for x in plugins),
        axes=tuple((k, _axis(k, v, where)) for k, v in axes_table.items()),
        baseline=data.get("baseline"),
        warmup=counts["warmup"],
        runs=counts["runs"],
    )


def _source(model: Any, base: Path) -> str | None:
    if model is None or model == "tiny-llama":
        return model
    if not isinstance(model, str):
        raise UserError(f'sweep: model must be "tiny-llama" or "MODULE:FUNCTION", got {model!r}')
    module, sep, func = model.rpartition(":")
    if sep and module.endswith(".py") and not Path(module).is_absolute():
        return f"{(base / module).resolve()}:{func}"
    return model


def plan_variants(
    spec: SweepSpec, variants: Sequence[Variant], refuse: Callable[[str], None]
) -> list[Planned]:
    """The variants the planner accepts (``refuse`` gets one line per other one)."""
    from pteflow.driver.api import plan
    from pteflow.ir import facts

    out = []
    for v in variants:
        try:
            the_plan = plan(pipeline=v.pipeline, overrides=v.overrides, plugins=spec.plugins)
            ordered = tuple(the_plan.ordered_passes())
            missing = [(p.name, p.unavailable_reason()) for p in ordered]
            missing = [(n, why) for n, why in missing if why]
            if missing:
                raise UserError(f"{missing[0][0]} is not available here: {missing[0][1]}")
        except UserError as e:
            refuse(f"refused: {v.label}: {e}")
            continue
        quantized = any(p.contract.provides & facts.QUANTIZATION for p in ordered)
        out.append(Planned(v, ordered, quantized, _stored_keys(ordered)))
    return out


def _stored_keys(ordered: Sequence[Any]) -> tuple[str, ...]:
    """The pass cache's chain keys of the leading passes whose results it stores, on one
    model (all variants load the same one, so the input program's hash is left out)."""
    from pteflow.ir import Level
    from pteflow.passes.cache.keys import chain_keys

    keys = chain_keys("sweep-model", ordered)
    stored = [k for k in keys if k is not None]  # the leading passes the cache keys
    return tuple(
        k if p.contract.level_out != Level.EAGER else ""  # EAGER results are not stored
        for k, p in zip(stored, ordered, strict=False)
    )


def shared_prefix(a: Planned, b: Planned) -> int:
    """How many stored pass results ``a`` and ``b`` share (the cache computes them once)."""
    n = 0
    for x, y in zip(a.stored_keys, b.stored_keys, strict=False):
        if x != y:
            break
        n += bool(x)
    return n


def parents(planned: Sequence[Planned]) -> dict[str, str | None]:
    """For each variant, the earlier one it shares the most stored results with (it waits
    for that one, so the shared prefix is computed once), or None."""
    out: dict[str, str | None] = {}
    for i, v in enumerate(planned):
        best, best_n = None, 0
        for u in planned[:i]:
            n = shared_prefix(u, v)
            if n > best_n:
                best, best_n = u.variant.id, n
        out[v.variant.id] = best
    return out
