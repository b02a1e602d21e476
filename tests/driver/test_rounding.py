"""A quantized .pte that misses its tolerance passes only if it matches, within the
tolerance, the quantized model with its linear inputs moved by an ulp or a few (one
dynamically quantized activation rounded the other way); anything else still fails."""

from __future__ import annotations

import copy
import json
from typing import ClassVar

import attrs
import pytest
import torch

import pteflow
from pteflow.driver.models import LoadedModel
from pteflow.driver.rounding import DRAWS, ULPS, RoundingCheck, check_rounding
from pteflow.driver.spec import PassSpec, build_pass
from pteflow.driver.verify import Verification
from pteflow.ir import Level, Program
from pteflow.ir.evaluate import Comparison
from pteflow.passes import Pass, PassContext, PassInfo, PassManager, PassResult
from pteflow.passes.registry import load_registry

from ._helpers import run


def _mlp() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))
    return mlp.eval(), torch.randn(1, 64)


@pytest.fixture(scope="module")
def quantized():
    """An 8da4w-quantized two-layer MLP (pteflow's quantize-8da4w pass) and an input
    whose element ``j`` sits one ulp below a rounding tie of its int8 activation."""
    mlp, x = _mlp()
    program = Program.eager(mlp, (x,))
    module = pteflow.compile(program, passes="quantize-8da4w", cache=False, verify=False)
    q = module.program.modules()["forward"]
    j = int(x.abs().argsort()[0, 32])  # an element that sets neither end of the row
    with torch.no_grad():
        base = q(x)
        lo, hi = x.clone(), x.clone()
        hi[0, j] += 0.5  # far enough to cross at least one tie
        assert not torch.equal(q(hi), base)
        while float(torch.nextafter(lo[0, j], hi[0, j])) != float(hi[0, j]):
            mid = lo.clone()
            mid[0, j] = (lo[0, j] + hi[0, j]) / 2
            if float(mid[0, j]) in (float(lo[0, j]), float(hi[0, j])):
                break
            lo, hi = (mid, hi) if torch.equal(q(mid), base) else (lo, mid)
    return q, lo, hi


def test_a_pte_that_rounded_one_activation_the_other_way_matches_a_variant(quantized):
    q, at_tie, past = quantized  # ``past``: the same input, one ulp up at the tie
    with torch.no_grad():
        reference = [[q(at_tie)]]
        pte = [[q(past)]]  # what an implementation whose fp32 rounds up there computes
    flip = float((pte[0][0] - reference[0][0]).abs().max())
    assert flip > 1e-3  # one activation rounded the other way: well above 1e-4

    def variants():  # the reference step by step, as reference_steps yields it
        with torch.no_grad():
            yield [q(at_tie)]

    check = check_rounding([q], variants, pte, reference, tolerance=1e-4)
    assert check.matched is not None, check.why_not()
    ulps, _, comparison = check.matched
    assert ulps in ULPS and comparison.max_abs_diff <= 1e-4
    assert check.sensitivity >= flip * 0.99  # the matched variant flipped too
    assert "matches the .pte to" in check.explains()

    # a real error of the same size is not rounding: no variant explains it
    wrong = [[reference[0][0] + torch.where(torch.arange(32) == 3, flip, 0.0)]]
    check = check_rounding([q], variants, wrong, reference, tolerance=1e-4)
    assert check.matched is None and check.tried == len(ULPS) * DRAWS
    assert f"{check.tried} tried" in check.why_not() and check.closest > 1e-4


def test_without_linears_there_is_nothing_to_move():
    relu = torch.nn.ReLU()
    check = check_rounding([relu], lambda: [[relu(torch.ones(2))]], [[torch.ones(2)]], [], 0.0)
    assert check.matched is None and check.tried == 0
    assert (
        check.why_not() == "rounding variants not checked: the reference has no nn.Linear to move"
    )


def test_a_matched_variant_never_excuses_nonfinite_outputs():
    matched = RoundingCheck((1, 0, Comparison(1e-6, 10)), tried=1, sensitivity=0.07)
    rounded = Verification(Comparison(0.07, 10), 0.01, 2, "quantized eager", rounding=matched)
    assert rounded.ok and not rounded.failed
    assert "verify: out of tolerance, but the quantized model" in rounded.summary()
    assert rounded.to_json()["rounding"]["matched"]["ulps"] == 1
    nan = Verification(Comparison(0.07, 10, nan=1), 0.01, 2, "quantized eager", rounding=matched)
    assert not nan.ok and "NaN in the .pte" in nan.why_failed()
    unmatched = RoundingCheck(None, tried=12, sensitivity=0.05, closest=0.07)
    failed = Verification(Comparison(0.07, 10), 0.01, 2, "quantized eager", rounding=unmatched)
    assert not failed.ok
    assert failed.why_failed().endswith(
        "> tolerance 0.01; no rounding variant of the reference comes within it (12 tried, "
        "linear inputs moved by 1-4 ulp; closest 0.07; the variants move up to 0.05 from "
        "the reference)"
    )


@pytest.mark.slow
def test_an_8da4w_pte_out_of_tolerance_fails_after_the_variants(tmp_path, capsys):
    """``--tol 0``: the tiny Llama's .pte is 1e-6 from its quantized model, and no
    rounding variant matches it exactly, so the run fails and says what was tried."""
    pte = tmp_path / "llama.pte"
    code, out, _ = run(capsys, "run", "--pipeline", "xnnpack_8da4w", "-o", str(pte), "--tol", "0")
    assert code == 1, out
    assert "no rounding variant of the reference comes within it (12 tried" in out
    check = json.loads(pte.with_suffix(".report.json").read_text())["verification"]
    assert check["ok"] is False and check["rounding"]["matched"] is None
    assert check["rounding"]["tried"] == len(ULPS) * DRAWS
    assert check["rounding"]["closest"] > 0


class _Accumulating(torch.nn.Module):
    """A linear with state, like a KV cache: each step adds to a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.register_buffer("seen", torch.zeros(4))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        self.seen += x[0]
        return self.linear(x) + self.seen


def test_a_variant_is_abandoned_at_its_first_wrong_step_and_the_state_put_back():
    from pteflow.driver.quantized_reference import reference_outputs, reference_steps

    module = _Accumulating()
    x = torch.randn(1, 4)
    program = Program.eager(module, (x,))
    steps = [("forward", (x,))] * 3
    reference = reference_outputs(program, steps)
    wrong = [[out[0] + 1.0] for out in reference]  # wrong from the first step on
    module.calls = 0
    check = check_rounding(
        [module], lambda: reference_steps(program, steps), wrong, reference, tolerance=1e-3
    )
    assert check.matched is None and check.tried == len(ULPS) * DRAWS
    assert module.calls == check.tried  # one step a variant, not three
    assert torch.equal(module.seen, torch.zeros(4))  # the state as it was
    assert check.closest == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow
def test_a_pt2e_reference_has_no_variants_and_says_so(tmp_path, capsys):
    pte = tmp_path / "llama.pte"
    code, out, _ = run(capsys, "run", "--pipeline", "xnnpack_pt2e", "-o", str(pte), "--tol", "0")
    assert code == 1, out
    assert (
        "rounding variants not checked: the reference after pt2e-convert is an aten graph"
    ) in out
    check = json.loads(pte.with_suffix(".report.json").read_text())["verification"]
    assert check["rounding"]["tried"] == 0 and check["rounding"]["unavailable"]


@attrs.frozen
class NudgeFirstLinearInputPass(Pass):
    """Move the first linear's input one ulp up (what fp32 arithmetic ordered otherwise
    can do to a value before it), or with ``shift`` add that to its output instead (an
    error). Edits the module in place, as source passes do."""

    info: ClassVar[PassInfo] = PassInfo(name="nudge-first-linear", level_in=Level.EAGER)
    shift: float = 0.0

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        (module,) = program.modules().values()
        first = next(m for m in module.modules() if isinstance(m, torch.nn.Linear))
        if self.shift:
            first.register_forward_hook(lambda _m, _a, out: out + self.shift)
        else:
            up = lambda _m, args: (torch.nextafter(args[0], torch.tensor(float("inf"))),)  # noqa: E731
            first.register_forward_pre_hook(up)
        return PassResult(program, True)


def _load(x: torch.Tensor) -> LoadedModel:
    mlp, _ = _mlp()
    return LoadedModel(
        Program.eager(mlp, (x,)), {"forward": copy.deepcopy(mlp)}, [("forward", (x,))], "mlp"
    )


def _debug_passes(shift: float):
    registry = load_registry(extra=[NudgeFirstLinearInputPass])
    specs = [PassSpec("quantize-8da4w", {}), PassSpec("nudge-first-linear", {"shift": shift})]
    return registry, [build_pass(registry, spec) for spec in specs]


@pytest.mark.parametrize("shift", [0.0, 0.07])
def test_track_numerics_and_bisect_put_a_flipped_tie_down_to_rounding(quantized, shift):
    """What verification accepts, ``--track-numerics`` and ``driver bisect`` accept too:
    a pass whose output rounded one activation the other way is not blamed (its row
    says which variant matched), a pass that adds an error of the same size is."""
    from pteflow.driver.bisect import bisect
    from pteflow.driver.numerics import NumericsTracker

    _q, at_tie, _past = quantized
    registry, passes = _debug_passes(shift)
    model = _load(at_tie)
    tracker = NumericsTracker(model.reference, model.steps, tolerance=1e-4)
    PassManager(passes, registry=registry).run(model.program, observers=[tracker])
    (row,) = [r for r in tracker.rows if r.pass_.startswith("nudge-first-linear")]
    assert row.vs_baseline is not None and row.vs_baseline.abs > 1e-3  # beyond 1e-4
    result = bisect(lambda: _load(at_tie), passes, tolerance=1e-4, registry=registry)
    if shift:
        assert row.over and row.note.startswith("DRIFT") and "12 tried" in row.note
        assert result.first_bad == 1
    else:
        assert not row.over and tracker.first_over() is None
        assert "but the quantized model with its linear inputs moved by" in row.note
        assert result.first_bad is None
        assert "matches its output to" in result.render()
