"""Numeric drift at every pass boundary (``driver run --track-numerics``).

After every pass the program is evaluated on the model's fixed ``steps`` and
compared with the eager reference and with the previous pass. Every
evaluation starts from a fresh copy of the state (a KV cache), feeds the steps
in order and compares every step's outputs:

    EAGER        a deep copy of the module
    ATEN, EDGE   a deep copy of ``exported_program(method).module()``
                 (delegates run the graphs they were lowered from)
    EXECUTORCH   the ``.pte`` bytes, loaded fresh in ``executorch.runtime``

A program that cannot run at its level is "not evaluable" in the table, never
an error. A lossy pass (one that provides a quantization fact, or changes the
dtype) is expected to add error: its row says so, and from there on the
tolerance applies against that pass's output instead of eager. A row beyond the
tolerance of a quantized EAGER output (8da4w) is "ok" if it matches one of that
output's rounding variants within it (``driver.rounding``: what verification accepts),
so the tracker keeps a private copy of that output's modules for the rest of the run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from pteflow.ir import Level, Program
from pteflow.passes.base import Pass
from pteflow.passes.manager import PassObserver, PassRecord

from .rounding import RoundingCheck, check_program_rounding, variants_source

if TYPE_CHECKING:
    import torch

Outputs = list[list["torch.Tensor"]]  # per step, the flat output tensors


class NotEvaluable(Exception):
    """The program cannot run at its level (the table says so)."""


def is_lossy(p: Pass) -> bool:
    """Does ``p`` add numeric error by design (quantization, dtype change)?"""
    from pteflow.ir import facts

    return bool(p.contract.provides & (facts.QUANTIZATION | {facts.DTYPE_OVERRIDDEN}))


def evaluate(program: Program, steps: Sequence[tuple[str, tuple[Any, ...]]]) -> Outputs:
    """Every step's outputs, from fresh state.

    Raises:
        NotEvaluable: the program cannot be run at its level (with the reason).
    """
    import torch
    from torch.utils._pytree import tree_flatten

    from pteflow.ir.evaluate import flat_tensors, load_program_in_runtime

    def clean(ts: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t.detach().clone() for t in ts]

    out: Outputs = []
    try:
        with torch.no_grad():
            if program.level == Level.EXECUTORCH:
                loaded = load_program_in_runtime(program)
                methods: dict[str, Any] = {}
                for method, inputs in steps:
                    if method not in methods:
                        methods[method] = loaded.load_method(method)
                    flat = list(tree_flatten(tuple(inputs))[0])
                    out.append(clean(flat_tensors(methods[method].execute(flat))))
                del methods, loaded
                return out
            callables: dict[str, Any] = {}
            for method, inputs in steps:
                if method not in callables:
                    if program.level == Level.EAGER:
                        callables[method] = copy.deepcopy(program.modules()[method])
                    else:
                        ep = program.exported_programs()[method]
                        callables[method] = copy.deepcopy(ep.module())
                out.append(clean(flat_tensors(callables[method](*inputs))))
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise NotEvaluable(f"{type(e).__name__}: {first}") from e
    return out


@attrs.frozen
class Drift:
    """Two evaluations compared: the largest finite difference (absolute, and relative to
    the reference's largest finite value) and the non-finite mismatches.

    ``nonfinite`` counts elements where one side is NaN/inf and the other is not the
    same value, or both are NaN (``ir.evaluate.Comparison``); ``problem`` is its one-line
    description (or how the outputs' structure differs). Any of them is a drift, whatever
    the tolerance.
    """

    abs: float
    rel: float
    nonfinite: int = 0
    problem: str | None = None

    def beyond(self, tolerance: float) -> bool:
        return self.problem is not None or self.abs > tolerance

    @staticmethod
    def between(got: Outputs, ref: Outputs, ref_name: str = "eager") -> Drift:
        from pteflow.ir.evaluate import Comparison, compare

        if len(got) != len(ref):
            return Drift(float("inf"), float("inf"), problem=f"{len(got)} steps vs {len(ref)}")
        total, scale = Comparison(), 0.0
        for g_step, r_step in zip(got, ref, strict=True):
            total = total + compare(g_step, r_step)
            for r in r_step:
                finite = r.detach().double()
                finite = finite[finite.isfinite()]
                if finite.numel():
                    scale = max(scale, finite.abs().max().item())
        worst = total.max_abs_diff
        return Drift(
            worst,
            worst / scale if scale else worst,
            total.nonfinite + total.nan_both,
            total.problem("this program", ref_name),
        )


@attrs.frozen
class NumericsRow:
    rank: int  # 0: the input program
    pass_: str
    level: str
    vs_eager: Drift | None
    vs_prev: Drift | None
    vs_baseline: Drift | None  # eager, or the output of the last lossy pass
    baseline: str  # "eager" or the lossy pass it is measured against
    note: str
    over: bool  # beyond the tolerance against the baseline

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class NumericsTracker(PassObserver):
    """Evaluate after every pass; collect one ``NumericsRow`` per pass."""

    needs_every_pass = True
    flag = "--track-numerics"

    def __init__(
        self,
        reference: Mapping[str, Any],
        steps: Sequence[tuple[str, tuple[Any, ...]]],
        tolerance: float,
        *,
        on_row: Callable[[NumericsRow], None] | None = None,
    ):
        self.steps = list(steps)
        self.tolerance = tolerance
        self.eager = eager_outputs(reference, self.steps)
        self.prev: Outputs | None = self.eager
        self.baseline: Outputs = self.eager
        self.baseline_name = "eager"
        self.rebase_pending = False
        self.rows: list[NumericsRow] = []
        self.variants_of: Program | None = None  # the last lossy output, if EAGER
        self.on_row = on_row
        self.eval_s = 0.0

    def before(self, rank: int, pass_: Pass, program_in: Program) -> None:
        if rank == 0:
            self._row(0, "(input)", program_in, lossy=False)

    def after(self, rank: int, pass_: Pass, program_out: Program, record: PassRecord) -> None:
        # a pass that changed nothing (the manager checks that claim in 'each' mode)
        # computes what the previous program computed: reuse its outputs
        same = None if record.modified or self.prev is None else self.prev
        self._row(rank + 1, pass_.describe(), program_out, lossy=is_lossy(pass_), same=same)

    def _row(
        self, rank: int, name: str, program: Program, *, lossy: bool, same: Outputs | None = None
    ) -> None:
        import time

        t0 = time.perf_counter()
        got: Outputs | None
        try:
            got = same if same is not None else evaluate(program, self.steps)
        except NotEvaluable as e:
            got, note = None, f"not evaluable at this level ({e})"
        self.eval_s += time.perf_counter() - t0
        if got is None:
            row = NumericsRow(
                rank, name, program.level.label, None, None, None, self.baseline_name, note, False
            )
            self.rebase_pending = self.rebase_pending or lossy
            self.variants_of = None if lossy else self.variants_of  # its output is unknown
            self.prev = None
        else:
            vs_base = Drift.between(got, self.baseline, self.baseline_name)
            vs_eager = Drift.between(got, self.eager)
            # NaN/inf where eager is finite is never expected, not even from a lossy pass
            # (a lossy baseline of NaNs would make every later NaN "match")
            broken = vs_eager.nonfinite > 0 or vs_eager.problem is not None
            over = vs_base.beyond(self.tolerance) or broken
            note = "ok"
            if broken:
                kind = "NON-FINITE" if vs_eager.nonfinite else "MISMATCH"
                note = f"{kind}: {vs_eager.problem}"
            elif over:
                beyond = f"{vs_base.abs:.3g} > tol {self.tolerance:.3g}"
                note = f"DRIFT: {vs_base.problem or beyond}"
                rebase = lossy or self.rebase_pending  # (this row is the new baseline)
                rounding = None if rebase or vs_base.problem else self._rounding(got)
                if rounding is not None and rounding.matched is not None:
                    over = False
                    note = f"ok ({beyond}, but {rounding.explains('this program')})"
                elif rounding is not None:
                    note += f"; {rounding.why_not()}"
            baseline_name = self.baseline_name
            if (lossy or self.rebase_pending) and not broken:
                note = (
                    "lossy pass (quantization/dtype): error expected; "
                    "later rows are compared with this output"
                    if over
                    else "ok (lossy pass: later rows are compared with this output)"
                )
                over = False
                self.baseline, self.baseline_name = got, name
                self.rebase_pending = False
                self.variants_of = variants_source(program) if lossy else None
            row = NumericsRow(
                rank,
                name,
                program.level.label,
                vs_eager,
                Drift.between(got, self.prev, "the previous pass")
                if self.prev is not None
                else None,
                vs_base,
                baseline_name,
                note,
                over,
            )
            self.prev = got
        self.rows.append(row)
        if self.on_row:
            self.on_row(row)

    def _rounding(self, got: Outputs) -> RoundingCheck | None:
        """``got`` against the rounding variants of the last lossy pass's output."""
        if self.variants_of is None:
            return None
        return check_program_rounding(
            self.variants_of, self.steps, got, self.baseline, self.tolerance
        )

    def first_over(self) -> NumericsRow | None:
        return next((r for r in self.rows if r.over), None)


def eager_outputs(
    reference: Mapping[str, Any], steps: Sequence[tuple[str, tuple[Any, ...]]]
) -> Outputs:
    """Every step's outputs of the eager reference modules (from fresh copies)."""
    first: dict[str, tuple[Any, ...]] = {}
    for method, inputs in steps:
        first.setdefault(method, inputs)
    return evaluate(Program.eager(dict(reference), first), steps)


def _fmt(d: Drift | None, rel: bool = False) -> str:
    if d is None:
        return "-"
    if d.nonfinite:
        return f"{d.nonfinite} NaN/inf"
    if d.problem:
        return "mismatch"
    return f"{(d.rel if rel else d.abs):.3g}"


def numerics_table(rows: Sequence[NumericsRow], tolerance: float) -> str:
    """The ``--track-numerics`` table: one row per pass, the first drift marked."""
    head = ("#", "pass", "level", "abs vs eager", "rel vs eager", "abs vs prev", "rel vs prev", "")
    table = [head]
    first = next((r for r in rows if r.over), None)
    for r in rows:
        mark = "  <== first drift beyond tolerance" if r is first else ""
        table.append(
            (
                str(r.rank),
                r.pass_,
                r.level,
                _fmt(r.vs_eager),
                _fmt(r.vs_eager, rel=True),
                _fmt(r.vs_prev),
                _fmt(r.vs_prev, rel=True),
                r.note + mark,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = [f"numerics (tolerance {tolerance:.3g}, against eager or the last lossy pass):"]
    for row in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
