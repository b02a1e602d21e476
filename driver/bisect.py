"""Find the first pass whose output drifts beyond a tolerance, or fails an invariant.

``driver bisect`` plans the pipeline once, then runs prefixes of the planned
order on a fresh copy of the model and evaluates the prefix's output
(``numerics.evaluate``). The predicate "prefix k is bad" (it raised, broke an
invariant, or drifts beyond the tolerance) is monotone in a pipeline where a
wrong pass stays wrong, so a binary search needs ceil(log2(n)) evaluations
after the one of the full pipeline. A prefix whose output cannot be evaluated
at its level is skipped: the search probes another point between the bounds.

Lossy passes (quantization) are expected to add error: inside a probe, the
output of the last lossy pass of the prefix is evaluated too and becomes the
reference the tolerance applies to (cached across probes). A prefix beyond the
tolerance of a quantized EAGER output (8da4w) is good if it matches one of that
output's rounding variants within it (``driver.rounding``: what verification
accepts, so a flipped rounding tie in XNNPACK's kernels is not blamed on a pass).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from pteflow.ir import Level, Program, views
from pteflow.ir.errors import InvariantError, PassFailedError
from pteflow.passes.base import Pass
from pteflow.passes.manager import PassManager, PassObserver, PassRecord, Verify

from .models import LoadedModel
from .numerics import Drift, NotEvaluable, Outputs, eager_outputs, evaluate, is_lossy
from .options import ModelOptions, PipelineOptions
from .rounding import check_program_rounding


@attrs.frozen
class Probe:
    """One evaluation of a prefix of ``k`` passes."""

    k: int
    bad: bool
    evaluable: bool
    drift: Drift | None = None
    error: str | None = None  # the prefix raised / broke an invariant
    failed_rank: int | None = None  # the rank of the pass that raised
    diff: str = ""  # input vs output dump of the prefix's last pass
    note: str = ""


@attrs.frozen
class BisectResult:
    order: tuple[str, ...]  # the planned passes, described
    first_bad: int | None  # rank (0-based) of the first bad pass; None: no pass is bad
    ambiguous_from: int | None  # set when unevaluable prefixes hide the exact pass
    probes: tuple[Probe, ...]
    evaluations: int  # evaluations of a program's numerics (prefix outputs + lossy baselines)
    prefix_runs: int

    def render(self) -> str:
        lines = [
            f"bisect: {len(self.order)} passes, {self.prefix_runs} prefix runs, "
            f"{self.evaluations} evaluations"
        ]
        for pr in self.probes:
            what = (
                f"raised in #{(pr.failed_rank or 0) + 1}: {pr.error}"
                if pr.error
                else pr.note
                if not pr.evaluable
                else (pr.drift.problem or f"max abs drift {pr.drift.abs:.3g}")
                + (f" ({pr.note})" if pr.note else "")
                if pr.drift
                else ""
            )
            lines.append(f"  prefix {pr.k:3d}: {'BAD ' if pr.bad else 'good'}  {what}")
        if self.first_bad is None:
            lines.append("no pass drifts beyond the tolerance or fails an invariant")
            return "\n".join(lines)
        name = self.order[self.first_bad]
        if self.ambiguous_from is not None:
            lines.append(
                f"first bad pass: one of #{self.ambiguous_from + 1}..#{self.first_bad + 1} "
                f"({', '.join(self.order[self.ambiguous_from : self.first_bad + 1])}): the "
                "programs between them are not evaluable at their level"
            )
        else:
            lines.append(f"first bad pass: #{self.first_bad + 1} {name}")
        last = next((p for p in self.probes if p.k == self.first_bad + 1), None) or next(
            (p for p in self.probes if p.error and p.failed_rank == self.first_bad), None
        )
        if last is not None and last.error:
            lines.append(f"  it fails: {last.error}")
        elif last is not None and last.drift is not None and last.drift.problem:
            lines.append(f"  its output: {last.drift.problem}")
        elif last is not None and last.drift is not None:
            lines.append(f"  its output drifts by {last.drift.abs:.3g} (max abs)")
        if last is not None and last.diff:
            lines.append("diff of its input and output:")
            lines.append(last.diff.rstrip())
        return "\n".join(lines)


class _Watch(PassObserver):
    """Inside one probe: baselines after lossy passes; the last pass's diff; the failing rank."""

    def __init__(self, k: int, steps: Sequence[Any], baselines: dict[int, Outputs | None]):
        self.k, self.steps, self.baselines = k, steps, baselines
        self.dump_in = ""
        self.diff = ""
        self.failed_rank: int | None = None
        self.evaluations = 0

    def before(self, rank: int, pass_: Pass, program_in: Program) -> None:
        if rank == self.k - 1:
            self.dump_in = views.dump(program_in)

    def after(self, rank: int, pass_: Pass, program_out: Program, record: PassRecord) -> None:
        if rank == self.k - 1:
            label = f"#{rank + 1} {pass_.describe()}"
            self.diff = (
                views.diff(
                    self.dump_in,
                    views.dump(program_out),
                    before_name=f"before {label}",
                    after_name=f"after {label}",
                )
                or "(no change in the dump)\n"
            )
        if is_lossy(pass_) and rank not in self.baselines:
            self.evaluations += 1
            try:
                self.baselines[rank] = evaluate(program_out, self.steps)
            except NotEvaluable:
                self.baselines[rank] = None

    def failed(self, rank: int, pass_: Pass, error: BaseException) -> None:
        self.failed_rank = rank


def bisect(
    load: Callable[[], LoadedModel],
    passes: Sequence[Pass],
    *,
    tolerance: float,
    verify: Verify = "boundaries",
    registry: Any = None,
    on_probe: Callable[[Probe], None] | None = None,
) -> BisectResult:
    """Binary-search the planned order of ``passes`` for the first bad pass.

    ``load`` returns a fresh model (passes edit programs in place, so every
    prefix starts from a new copy).
    """
    first = load()
    the_plan = PassManager(passes, verify=verify, registry=registry).plan(
        start_level=first.program.level, initial_facts=first.program.facts
    )
    ordered = the_plan.ordered_passes()
    n = len(ordered)
    eager_ref = eager_outputs(first.reference, first.steps)
    baselines: dict[int, Outputs | None] = {}
    probes: dict[int, Probe] = {}
    sources: dict[int, Program | None] = {}  # lossy rank: its output, for rounding variants
    counts = {"evaluations": 0, "runs": 0}
    fresh: list[LoadedModel | None] = [first]

    def probe(k: int) -> Probe:
        model = fresh.pop() if fresh else None
        model = model or load()
        watch = _Watch(k, model.steps, baselines)
        counts["runs"] += 1
        try:
            result = PassManager(ordered[:k], verify=verify, registry=registry).run(
                model.program, observers=[watch]
            )
        except (PassFailedError, InvariantError) as e:
            counts["evaluations"] += watch.evaluations
            rank = watch.failed_rank if watch.failed_rank is not None else k - 1
            return Probe(k, True, True, error=str(e), failed_rank=rank)
        counts["evaluations"] += watch.evaluations + 1
        lossy = [r for r in range(k) if is_lossy(ordered[r])]
        ref = baselines.get(lossy[-1]) if lossy else eager_ref
        if ref is None:
            return Probe(
                k, False, False, diff=watch.diff, note="its lossy pass's output is not evaluable"
            )
        try:
            got = evaluate(result.program, model.steps)
        except NotEvaluable as e:
            return Probe(k, False, False, diff=watch.diff, note=f"not evaluable ({e})")
        drift = Drift.between(got, ref)
        if ref is not eager_ref:  # NaN/inf where eager is finite is bad after any lossy pass
            vs_eager = Drift.between(got, eager_ref)
            if vs_eager.nonfinite or vs_eager.problem:
                drift = attrs.evolve(vs_eager, abs=drift.abs, rel=drift.rel)
        only_beyond = drift.beyond(tolerance) and not drift.nonfinite and not drift.problem
        source = lossy_output(lossy[-1]) if only_beyond and lossy else None
        if source is not None:  # rounding, or an error?
            rounding = check_program_rounding(source, model.steps, got, ref, tolerance)
            if rounding.matched is not None:
                note = f"out of tolerance, but {rounding.explains('its output')}"
                return Probe(k, False, True, drift=drift, diff=watch.diff, note=note)
        return Probe(k, drift.beyond(tolerance), True, drift=drift, diff=watch.diff)

    def lossy_output(rank: int) -> Program | None:
        """The EAGER output of lossy pass ``rank`` again, from a fresh model (built only
        when a probe drifts, kept for the next): the rounding variants run from it. None
        when the pass outputs another level (no ``nn.Linear`` to move): not built."""
        if rank not in sources:
            sources[rank] = None
            if ordered[rank].info.level_out == Level.EAGER:
                counts["runs"] += 1
                manager = PassManager(ordered[: rank + 1], verify=verify, registry=registry)
                sources[rank] = manager.run(load().program).program
        return sources[rank]

    def record(p: Probe) -> Probe:
        probes[p.k] = p
        if on_probe:
            on_probe(p)
        return p

    full = record(probe(n))
    lo, hi = 0, n  # prefix lo is good (the input is the reference), prefix hi is bad
    if full.error is not None and full.failed_rank is not None:
        hi = full.failed_rank + 1
    elif not full.bad:
        return _result(ordered, None, None, probes, counts)
    skipped: set[int] = set()
    while hi - lo > 1:
        candidates = [k for k in range(lo + 1, hi) if k not in skipped]
        if not candidates:
            break
        mid = min(candidates, key=lambda k: (abs(k - (lo + hi) / 2), k))
        p = record(probe(mid))
        if not p.evaluable:
            skipped.add(mid)
        elif p.bad:
            hi = p.failed_rank + 1 if p.error is not None and p.failed_rank is not None else mid
        else:
            lo = mid
    raised = any(p.failed_rank == hi - 1 for p in probes.values())
    if hi not in probes and not raised:  # the diff of the blamed pass
        record(probe(hi))
    ambiguous = lo if any(k in skipped for k in range(lo + 1, hi)) else None
    return _result(ordered, hi - 1, ambiguous, probes, counts)


def _result(
    ordered: Sequence[Pass],
    first_bad: int | None,
    ambiguous: int | None,
    probes: dict[int, Probe],
    counts: dict[str, int],
) -> BisectResult:
    return BisectResult(
        order=tuple(p.describe() for p in ordered),
        first_bad=first_bad,
        ambiguous_from=ambiguous,
        probes=tuple(probes.values()),
        evaluations=counts["evaluations"],
        prefix_runs=counts["runs"],
    )


def run_bisect(
    chosen: PipelineOptions,
    model: ModelOptions,
    *,
    tol: float | None,
    checks: Verify = "each",
    on_probe: Callable[[Probe], None] | None = None,
) -> BisectResult:
    """``pteflow.bisect`` / ``driver bisect``: the pipeline's passes, bisected on ``model``.

    An emit pass writes to a temporary directory (probes must not overwrite the .pte).

    Raises:
        UserError: ``tol`` is missing or negative; what building the passes refuses.
    """
    import tempfile
    from pathlib import Path

    from pteflow.ir.errors import UserError

    from .resolve import build, load_model, specs_for
    from .spec import apply_overrides

    if tol is None:
        raise UserError("bisect needs a tolerance: --tol X (e.g. --tol 1e-4)")
    if not tol >= 0:
        raise UserError(f"--tol must be a number >= 0, got {tol}")
    pipe, specs = specs_for(chosen)
    with tempfile.TemporaryDirectory(prefix="pteflow-bisect-") as tmp:
        if any(s.name == "emit" for s in specs):
            specs = apply_overrides(specs, [f"emit.path={Path(tmp) / 'probe.pte'}"])
        registry, passes = build(specs, chosen.plugins)
        return bisect(
            lambda: load_model(model, pipe),
            passes,
            tolerance=tol,
            verify=checks,
            registry=registry,
            on_probe=on_probe,
        )
