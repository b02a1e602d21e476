"""Scheduling reasons are typed (passes/reasons.py); text is for display only."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest

from pteflow.ir import Fact, Level
from pteflow.ir.errors import UnsatisfiedError
from pteflow.passes import Pass, PassInfo, plan
from pteflow.passes.reasons import Kind, Reason

FA = Fact("fa", "fact a")


@attrs.frozen
class MakeA(Pass):
    """Provides fa only with make=true (its contract depends on an option)."""

    info: ClassVar[PassInfo] = PassInfo(name="make-a", level_in=Level.ATEN)
    make: bool = False

    @property
    def contract(self) -> PassInfo:
        return attrs.evolve(self.info, provides={FA}) if self.make else self.info


@attrs.frozen
class KillA(Pass):
    """Invalidates fa."""

    info: ClassVar[PassInfo] = PassInfo(
        name="kill-a", level_in=Level.ATEN, invalidates={FA}, after=(MakeA,)
    )


@attrs.frozen
class Provides(Pass):
    """A pass whose name reads like a fact reason ("provides ...")."""

    info: ClassVar[PassInfo] = PassInfo(name="provides", level_in=Level.ATEN, after=(MakeA, KillA))


@attrs.frozen
class ReadA(Pass):
    """Requires fa."""

    info: ClassVar[PassInfo] = PassInfo(name="read-a", level_in=Level.ATEN, requires={FA})


@attrs.frozen
class ReadAfterKill(Pass):
    """Requires fa, after kill-a."""

    info: ClassVar[PassInfo] = PassInfo(
        name="read-after-kill", level_in=Level.ATEN, requires={FA}, after=(KillA,)
    )


def test_reasons_are_typed_and_render_the_same_text():
    the_plan = plan([ReadA(), MakeA(make=True), KillA()], start_level=Level.ATEN)
    # 0 read-a, 1 make-a, 2 kill-a
    assert the_plan.reasons[(1, 0)] == (Reason(Kind.PROVIDES, "fa"),)
    assert Reason(Kind.AFTER, "make-a", by="kill-a") in the_plan.reasons[(1, 2)]
    assert Reason(Kind.READS, "fa", by="kill-a") in the_plan.reasons[(0, 2)]
    assert str(Reason(Kind.READS, "fa", by="kill-a")) == "reads fa before kill-a invalidates it"
    assert "after make-a#1: provides fa" in the_plan.why(0)


def test_implied_constraints_are_told_apart_by_kind_not_by_text():
    # make-a -> kill-a -> provides: the edge make-a -> provides (a declared "after", implied
    # through kill-a) is hidden; its text starts with "provides ", which a text test mistook
    # for a fact reason
    the_plan = plan([MakeA(), KillA(), Provides()], start_level=Level.ATEN)
    shown = the_plan.why(2, implied=False)
    assert shown == ["after kill-a#1: provides declares after kill-a"]


def test_the_invalidation_hint_reads_the_contract_options_decide():
    registry = {"make-a": MakeA, "kill-a": KillA, "read-after-kill": ReadAfterKill}
    with pytest.raises(UnsatisfiedError, match=r"add make-a\{make=true\} after kill-a"):
        plan(
            [MakeA(make=True), KillA(), ReadAfterKill()],
            start_level=Level.ATEN,
            registry=registry,
        )
