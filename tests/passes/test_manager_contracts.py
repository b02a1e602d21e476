"""Assumed facts and ``Pass.check_schedule``: what the planner decides before any work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import pytest

from pteflow.ir import Fact, Level, Program
from pteflow.ir.errors import ConflictError, UnsatisfiedError
from pteflow.passes.base import Pass, PassContext, PassInfo, PassResult
from pteflow.passes.manager import PassManager, plan, refuted_facts

E = Level.EAGER
# holds of a fresh program unless its "poisoned" attribute says otherwise
CLEAN = Fact(
    "clean",
    "nothing poisoned",
    lambda p: "poisoned" if getattr(p.modules()["forward"], "poisoned", False) else None,
    assumed=True,
)


@attrs.frozen
class Poison(Pass):
    """Poison."""

    info: ClassVar[PassInfo] = PassInfo(name="poison", level_in=E, invalidates={CLEAN})

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return PassResult(program, False)


@attrs.frozen
class Cure(Pass):
    """Cure."""

    info: ClassVar[PassInfo] = PassInfo(name="cure", level_in=E, provides={CLEAN}, after=(Poison,))

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return PassResult(
            program.evolve(artifact={"forward": _program().modules()["forward"]}), True
        )


@attrs.frozen
class Reader(Pass):
    """Read clean."""

    info: ClassVar[PassInfo] = PassInfo(
        name="reader", level_in=E, requires={CLEAN}, after=(Poison, Cure)
    )
    limit: int = 0

    def check_schedule(self, earlier: Sequence[Pass], later: Sequence[Pass]) -> str | None:
        if self.limit and len(earlier) > self.limit:
            return f"at most {self.limit} pass(es) before it, got {len(earlier)}"
        return None

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return PassResult(program, False)


def _program(poisoned: bool = False) -> Program:
    import torch

    module = torch.nn.Identity()
    module.poisoned = poisoned  # type: ignore[assignment]
    return Program.eager(module, (torch.zeros(1),))


def test_an_assumed_fact_holds_without_a_provider():
    assert [p.name for p in plan([Reader()]).ordered_passes()] == ["reader"]
    PassManager([Reader()]).run(_program())


def test_an_invalidated_assumed_fact_needs_a_provider_in_between():
    with pytest.raises(UnsatisfiedError, match=r"reader#1 requires fact 'clean'.*poison#0"):
        plan([Poison(), Reader()])
    order = plan([Poison(), Reader(), Cure()]).ordered_passes()
    assert [p.name for p in order] == ["poison", "cure", "reader"]


def test_an_input_that_refutes_the_assumption_is_refused_before_any_pass():
    assert refuted_facts([Reader()], _program(poisoned=True)) == {CLEAN}
    with pytest.raises(UnsatisfiedError, match="requires fact 'clean'"):
        PassManager([Reader()]).run(_program(poisoned=True))
    PassManager([Cure(), Reader()]).run(_program(poisoned=True))  # a provider fixes it


def test_check_schedule_sees_the_order_and_refuses_with_its_reason():
    assert plan([Poison(), Cure(), Reader(limit=2)])
    with pytest.raises(ConflictError, match=r"^reader#2: at most 1 pass\(es\) before it, got 2$"):
        plan([Poison(), Cure(), Reader(limit=1)])
