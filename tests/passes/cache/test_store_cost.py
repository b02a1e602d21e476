"""What a cold run pays for the cache: graphs are serialized only for entries worth it.

With the thread writer, serializing a graph is pure Python on the main thread
(``passes/cache/worth.py``: on another thread it would still hold the GIL the passes
need); with the forked writer it is done in a child, and none on the run's critical path.
Either way the session serializes no program it can do without: an unmodified pass that
only adds facts is an alias of its input's entry, and a pass cheaper to run again than to
store leaves its key only. Each test counts the serializer calls in this process, per
thread, with a wrapper around the real serializers (torch's serde, which
``torch.export.save`` runs, for ATEN entries, executorch's for the others): the thread
writer's are all on the main thread, the forked writer's none.
The small MLP through XNNPACK (``test_cache.py``'s pipeline).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import ClassVar

import attrs
import pytest

from pteflow.ir import Level, Program
from pteflow.passes import Pass, PassContext, PassInfo, PassResult
from pteflow.passes.cache import PassCache
from pteflow.passes.quantize.pt2e_calibrate import Pt2eCalibratePass

from .test_cache import cached, run
from .test_integrity import entries_by_pass, split


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """(serializer, thread name) -> calls, counted during the test."""
    from executorch.exir.serde.serialize import ExportedProgramSerializer
    from torch._export.serde import serialize as torch_serde

    seen: Counter = Counter()
    aten, serialize = (
        torch_serde.ExportedProgramSerializer.serialize,
        ExportedProgramSerializer.serialize,
    )

    def counted_aten(self, *args, **kwargs):
        seen["torch serde", threading.current_thread().name] += 1
        return aten(self, *args, **kwargs)

    def counted_serialize(self, *args, **kwargs):
        seen["exir serde", threading.current_thread().name] += 1
        return serialize(self, *args, **kwargs)

    monkeypatch.setattr(torch_serde.ExportedProgramSerializer, "serialize", counted_aten)
    monkeypatch.setattr(ExportedProgramSerializer, "serialize", counted_serialize)
    return seen


@attrs.frozen
class _Touch(Pass):
    """Changes an ATEN program's metadata only (not its graph, not the .pte), after
    ``seconds``: a pass whose result differs from its input, as cheap or as slow as told."""

    info: ClassVar[PassInfo] = PassInfo(name="touch", level_in=Level.ATEN)
    seconds: float = 0.0

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        time.sleep(self.seconds)
        return PassResult(program.evolve(metadata={**program.metadata, "_touched": 1}), True)


@attrs.frozen
class _SlowTouch(_Touch):
    info: ClassVar[PassInfo] = PassInfo(name="slow-touch", level_in=Level.ATEN)


def here(kind: str, counted: dict) -> dict:
    """What ``calls`` holds for serializations ``counted`` on the main thread."""
    return counted if kind == "thread" else {}


def test_an_unmodified_pass_adding_facts_is_an_alias_not_a_serialized_graph(
    tmp_path, calls, writer_kind
):
    cache = PassCache(tmp_path / "cache", log=pytest.fail)
    first, pte1 = run(cache, tmp_path / "a.pte")
    by_pass = entries_by_pass(cache)
    header, payload = split(by_pass["convert-to-linear"].read_bytes())
    assert header["alias_with_facts"]["of"] == by_pass["partition-xnnpack"].stem
    assert "linear.canonical" in header["alias_with_facts"]["facts"] and not payload
    # serde runs once per program, delegates' original programs included: to-edge 1,
    # partition-xnnpack 2, to-executorch 1 (its delegate is partition's, serialized
    # once: delegate_texts.py); not convert-to-linear (2 more before)
    expected = {("torch serde", "MainThread"): 1, ("exir serde", "MainThread"): 4}
    assert calls == here(writer_kind, expected)
    # a resume from the alias has convert-to-linear's facts and lowers the same
    by_pass["to-executorch"].unlink()
    second, pte2 = run(cache, tmp_path / "b.pte")
    assert cached(second)["convert-to-linear"] and not cached(second)["to-executorch"]
    assert second.program.facts == first.program.facts
    assert pte2 == pte1


def test_a_pass_cheaper_to_run_again_than_to_store_leaves_its_key_only(
    tmp_path, calls, writer_kind
):
    """export's entry measures what storing an ATEN program costs; ``touch`` takes no
    time (key only), ``slow-touch`` longer than storing (stored)."""
    cache = PassCache(tmp_path / "cache", log=pytest.fail)
    extra = [_Touch(), _SlowTouch(seconds=2.0)]
    first, pte1 = run(cache, tmp_path / "a.pte", extra=extra)
    order = [r.name for r in first.records]
    assert order.index("export") < order.index("touch") < order.index("slow-touch")
    by_pass = entries_by_pass(cache)
    header, payload = split(by_pass["touch"].read_bytes())
    assert header["key_only"] and header["payload_bytes"] == 0 and not payload
    assert split(by_pass["slow-touch"].read_bytes())[0]["payload_bytes"] > 0
    if writer_kind == "thread":
        assert calls["torch serde", "MainThread"] == 2  # export, slow-touch (3 before)
        assert sum(n for (_s, thread), n in calls.items() if thread != "MainThread") == 0
    else:
        assert not calls  # all in the children
    assert cache.info().last_run["key_only"] == 1
    # a run that cannot start after slow-touch starts after export and runs touch again
    for name in order[order.index("slow-touch") :]:
        if name in by_pass:
            by_pass[name].unlink()
    second, pte2 = run(cache, tmp_path / "b.pte", extra=extra)
    assert [r.name for r in second.records if r.cached] == order[: order.index("touch")]
    assert pte2 == pte1


@attrs.frozen
class _SlowCalibrate(Pt2eCalibratePass):
    """pt2e-calibrate, slow enough that its result would be worth storing."""

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        time.sleep(2.0)
        return super().run(program, ctx)


def test_a_program_with_observers_leaves_its_key_without_a_failed_store(
    tmp_path, calls, writer_kind
):
    """pt2e's observed program (call_module nodes) is not valid to torch.export.save:
    every pt2e run used to try, fail and warn. It is a key now, with the reason, and
    what follows is stored as before."""
    from pteflow import testing
    from pteflow.passes.cache import codec
    from pteflow.passes.quantize.pt2e_convert import Pt2eConvertPass
    from pteflow.passes.quantize.pt2e_prepare import Pt2ePreparePass

    from ...models import mlp

    cache = PassCache(tmp_path / "cache", log=pytest.fail)  # no warning
    extra = [Pt2ePreparePass(quantizer="xnnpack-static"), _SlowCalibrate(), Pt2eConvertPass()]
    first, _pte = run(cache, tmp_path / "a.pte", extra=extra)
    by_pass = entries_by_pass(cache)
    header, payload = split(by_pass["pt2e-calibrate"].read_bytes())
    assert "calls submodules" in header["key_only"] and not payload
    # export's and pt2e-convert's; none for the observed programs
    assert calls["torch serde", "MainThread"] == (2 if writer_kind == "thread" else 0)
    assert first.records[[r.name for r in first.records].index("pt2e-calibrate")].modified
    assert split(by_pass["to-edge"].read_bytes())[0]["payload_bytes"] > 0
    assert codec.why_unstorable(testing.build_program(*mlp(), level=Level.ATEN)) is None


def test_a_result_is_stored_when_its_rerun_costs_twice_its_store():
    """Storing is paid by every cold run, the re-run only by a run that resumes there:
    a result is stored when re-running since the last restorable entry costs at least
    ``PAYBACK`` (2) times what storing it is estimated to (stories' remove-redundant-
    transposes: 0.23 s to run, 0.21 s to store, is a key)."""
    from pteflow.passes.cache.worth import PAYBACK, StoreBudget

    budget = StoreBudget()
    assert budget.worth_storing(Level.ATEN, 100)  # the first of a level measures the rate
    budget.stored(Level.ATEN, 100, 0.2)
    budget.ran({"wall_s": 0.23, "check_s": 0.0})
    assert not budget.worth_storing(Level.ATEN, 100)  # 0.23 s against 0.2 s to store
    budget.ran({"wall_s": 0.17, "check_s": 0.01})
    assert budget.worth_storing(Level.ATEN, 100) and PAYBACK == 2.0  # 0.41 >= 2 * 0.2
    assert budget.worth_storing(Level.EDGE, 1000)  # another level: its own first entry
    budget.stored(Level.ATEN, 100, 0.2)
    assert not budget.worth_storing(Level.ATEN, 100)  # stored: nothing to re-run since


def test_while_a_forked_child_stores_the_last_result_a_quick_one_is_a_key():
    """With the forked writer a result's serialization time is known once its child
    reports; until then, storing the next result of that level would wait for the child
    still running, so it is stored only if re-running it costs twice as long as the
    child has run."""
    from pteflow.passes.cache.worth import StoreBudget

    budget = StoreBudget()
    budget.restorable()  # export's result handed to a child; no rate reported yet
    budget.ran({"wall_s": 0.1, "check_s": 0.0})
    assert not budget.worth_storing(Level.ATEN, 100, busy_s=0.3)  # 0.1 s < 2 * 0.3 s
    assert budget.worth_storing(Level.ATEN, 100, busy_s=0.0)  # no child: the first measures
    budget.ran({"wall_s": 0.6, "check_s": 0.0})
    assert budget.worth_storing(Level.ATEN, 100, busy_s=0.3)  # 0.7 s >= 0.6 s
    budget.measured(Level.ATEN, 100, 0.5)  # the child's report: the rate is known
    assert not budget.worth_storing(Level.ATEN, 100, busy_s=0.3)  # 0.7 s < 2 * 0.5 s
    assert not budget.worth_storing(Level.ATEN, 100)  # whether or not a child runs
