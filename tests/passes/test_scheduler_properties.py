"""Property and unit tests for the PassManager's scheduler (``passes/manager.py``).

The property tests generate small pipelines of fake passes (at most 6 positions)
and compare ``plan()`` with an independent brute-force oracle that tries every
permutation against the documented ordering rules (the docstring of
``pteflow.passes.manager``):

* every provider of F runs before every consumer of F;
* ``after`` / ``before`` against every instance of the named class;
* levels: each pass reads the level the program is at (from the start level), and a
  pass whose output level is at or below another's input level runs first;
* ``ordered`` passes keep their listed order; a ``last`` pass runs last;
* runtime facts: a pass's requirements hold when it runs (initial facts, minus
  invalidated, plus provided);
* the greedy invalidation rule, exactly as documented: for an invalidator ``v`` of F
  and a consumer ``c`` of F, if the other constraints already force ``v`` before ``c``,
  some other provider of F must be forced between them (else unsatisfiable); otherwise
  ``c`` runs before ``v``.

Ties are broken by the listed position, so the plan must be the lexicographically
smallest valid order (``itertools.permutations`` yields permutations in that order).

When no valid order exists the error class must fit a reason: ConflictError for two
``last`` passes (checked first, alone); UnsatisfiedError for a requirement that no
other pass provides and the start does not hold, for the invalidation rule, or for an
acyclic graph whose orders all break the level chain or the runtime facts; CycleError
for a cycle among the constraints. A level chain that is impossible by itself may
surface as either (the manager's level edges then need not match the oracle's).
Generated classes never subclass each other, so ``after``/``before`` by subclass is
not exercised here.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import event, given, reject, settings
from hypothesis import strategies as st

from pteflow.ir import Fact, Level, Program
from pteflow.ir.errors import (
    ConflictError,
    CycleError,
    PipelineError,
    UnavailableError,
    UnsatisfiedError,
)
from pteflow.passes.base import Pass, PassContext, PassInfo, PassResult
from pteflow.passes.manager import PassManager, plan

E, A, D, X = Level.EAGER, Level.ATEN, Level.EDGE, Level.EXECUTORCH
FACTS = (Fact("fa", "fact a"), Fact("fb", "fact b"), Fact("fc", "fact c"))
FA, FB, FC = FACTS

# Deviations of passes/manager.py from its documented rules that the property test
# tolerates (none now: the four found by this file are fixed and pinned by unit tests).
KNOWN_BUGS: frozenset[str] = frozenset()

# --------------------------------------------------------------------------- fake passes


@attrs.frozen
class Spec:
    """One generated pass class: its contract, with facts and classes as indices."""

    name: str
    level_in: Level
    level_out: Level
    requires: frozenset[Fact] = frozenset()
    provides: frozenset[Fact] = frozenset()
    invalidates: frozenset[Fact] = frozenset()
    after: frozenset[int] = frozenset()  # indices of other specs
    before: frozenset[int] = frozenset()
    ordered: bool = False
    last: bool = False

    @property
    def key(self) -> tuple[Level, Level]:
        return (self.level_in, self.level_out)


def make_class(name: str, info: dict[str, Any] | None = None) -> type[Pass]:
    """A fresh ``@attrs.frozen`` Pass subclass; ``info`` (PassInfo kwargs) may be set later."""
    cls = attrs.frozen(
        type(
            f"Fake_{name.replace('-', '_')}",
            (Pass,),
            {"__doc__": f"Fake pass {name}.", "__module__": __name__},
        )
    )
    if info is not None:
        cls.info = PassInfo(name=name, **info)
    return cls


def build_classes(specs: Sequence[Spec]) -> list[type[Pass]]:
    classes = [make_class(s.name) for s in specs]  # all first: after/before refer forward
    for s, cls in zip(specs, classes, strict=True):
        cls.info = PassInfo(
            name=s.name,
            level_in=s.level_in,
            level_out=s.level_out,
            requires=s.requires,
            provides=s.provides,
            invalidates=s.invalidates,
            after=tuple(classes[j] for j in sorted(s.after)),
            before=tuple(classes[j] for j in sorted(s.before)),
            ordered=s.ordered,
            last=s.last,
        )
    return classes


@attrs.frozen
class Case:
    """A generated pipeline: class specs, the listed classes, and the starting program."""

    specs: tuple[Spec, ...]
    pipeline: tuple[int, ...]  # spec index per position
    fresh: tuple[bool, ...]  # per position: a new (equal) instance, or the class's shared one
    start: Level
    initial: frozenset[Fact]

    def build(self) -> list[Pass]:
        """New classes and instances; a repeated class reuses one instance unless fresh."""
        classes = build_classes(self.specs)
        shared = [cls() for cls in classes]
        return [
            classes[k]() if new else shared[k]
            for k, new in zip(self.pipeline, self.fresh, strict=True)
        ]

    def run_plan(self, passes: Sequence[Pass]):
        return plan(passes, start_level=self.start, initial_facts=self.initial)


# Mostly same-level passes, some conversions; the first entry is what Hypothesis shrinks to.
LEVEL_KEYS = [(E, E)] * 16 + [(A, A)] * 2 + [(E, A)] * 2 + [(A, D), (D, D), (E, D), (D, X)]


def chance(draw: st.DrawFn, tenths: int) -> bool:
    """True with probability tenths/10; shrinks to False."""
    return draw(st.integers(0, 9)) >= 10 - tenths


def some_facts(draw: st.DrawFn, tenths: int) -> frozenset[Fact]:
    return frozenset(f for f in FACTS if chance(draw, tenths))


# What a pass does with one fact: mostly nothing, else one role, rarely two.
ROLES = (
    [()] * 8
    + [("requires",)] * 3
    + [("provides",)] * 3
    + [("invalidates",)] * 2
    + [("requires", "invalidates"), ("requires", "provides"), ("provides", "invalidates")]
)


# For cases focused on invalidation: more invalidators, no provide-and-require.
INVALIDATION_ROLES = (
    [()] * 4
    + [("requires",)] * 3
    + [("provides",)] * 2
    + [("invalidates",)] * 3
    + [("requires", "invalidates"), ("provides", "invalidates")]
)


def fact_roles(
    draw: st.DrawFn, roles_pool: Sequence[tuple[str, ...]] = ROLES, facts: Sequence[Fact] = FACTS
) -> dict[str, frozenset[Fact]]:
    roles = {f: draw(st.sampled_from(roles_pool)) if f in facts else () for f in FACTS}
    return {
        r: frozenset(f for f in FACTS if r in roles[f])
        for r in ("requires", "provides", "invalidates")
    }


@st.composite
def cases(draw: st.DrawFn, max_n: int = 6, focus: bool = False) -> Case:
    """A random pipeline; ``focus``: one level, no ``last``, few explicit constraints and
    more invalidators, so that the invalidation rule decides more of the outcomes."""
    k = draw(st.integers(2 if focus else 1, 5))
    others = st.integers(0, k - 1)
    lasts: set[int] = set()  # often one class marked last, rarely two
    if not focus and chance(draw, 4):
        lasts.add(draw(others))
        if chance(draw, 1):
            lasts.add(draw(others))
    specs = []
    for i in range(k):
        level_in, level_out = (E, E) if focus else draw(st.sampled_from(LEVEL_KEYS))
        specs.append(
            Spec(
                name=f"p{i}",
                level_in=level_in,
                level_out=level_out,
                **(fact_roles(draw, INVALIDATION_ROLES, FACTS[:2]) if focus else fact_roles(draw)),
                after=frozenset(j for j in range(k) if j != i and chance(draw, 1 if focus else 2)),
                before=frozenset(j for j in range(k) if j != i and chance(draw, 1)),
                ordered=chance(draw, 1 if focus else 2),
                last=i in lasts,
            )
        )
    top = max(s.level_out for s in specs)
    for i in sorted(lasts):  # a last pass mostly reads the final level, as emit does
        if chance(draw, 7):
            specs[i] = attrs.evolve(specs[i], level_in=top, level_out=top)
    pipeline = draw(st.lists(others, min_size=min(3, max_n) if focus else 1, max_size=max_n))
    fresh = draw(st.lists(st.booleans(), min_size=len(pipeline), max_size=len(pipeline)))
    start = E if focus else draw(st.sampled_from([E] * 7 + [A]))
    initial = some_facts(draw, 2)
    # Mostly supply what nothing provides, so that the other rules get exercised.
    listed = [specs[k] for k in pipeline]
    unprovided = {
        f
        for i, s in enumerate(listed)
        for f in s.requires
        if not any(f in o.provides for j, o in enumerate(listed) if j != i)
    }
    initial |= {f for f in sorted(unprovided - initial, key=str) if chance(draw, 8)}
    return Case(tuple(specs), tuple(pipeline), tuple(fresh), start, initial)


# --------------------------------------------------------------------------- the oracle


class Oracle:
    """Every documented constraint of a Case, checked by brute force over permutations."""

    def __init__(self, case: Case):
        sp = [case.specs[k] for k in case.pipeline]
        self.sp, self.case, self.n = sp, case, len(sp)
        n = self.n
        self.lasts = [i for i in range(n) if sp[i].last]

        # Precedence constraints other than invalidation ("base").
        base: set[tuple[int, int]] = set()
        for c in range(n):
            for p in range(n):
                if p != c and sp[p].provides & sp[c].requires:
                    base.add((p, c))  # every provider of F before every consumer of F
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                if case.pipeline[j] in sp[i].after:
                    base.add((j, i))
                if case.pipeline[j] in sp[i].before:
                    base.add((i, j))
                a, b = sp[i].key, sp[j].key
                if a != b and a[1] <= b[0]:  # levels only move forward
                    base.add((i, j))
        ordered = [i for i in range(n) if sp[i].ordered]
        base |= set(itertools.combinations(ordered, 2))
        for last in self.lasts:
            base |= {(j, last) for j in range(n) if j != last}
        self.base = base
        reach = self._closure(base)
        self.base_cyclic = any(reach[i][i] for i in range(n))

        # The documented greedy invalidation rule, against the base constraints.
        self.static_failures: list[tuple[Fact, int, int]] = []  # (fact, invalidator, consumer)
        self.bug_between_is_consumer = False
        inv_edges: set[tuple[int, int]] = set()
        for f in FACTS:
            invalidators = [
                v for v in range(n) if f in sp[v].invalidates and f not in sp[v].provides
            ]
            consumers = [c for c in range(n) if f in sp[c].requires]
            for v in invalidators:
                for c in consumers:
                    if c == v:
                        continue
                    if reach[v][c]:
                        between = [
                            p
                            for p in range(n)
                            if p not in (v, c)
                            and f in sp[p].provides
                            and reach[v][p]
                            and reach[p][c]
                        ]
                        if not between:
                            self.static_failures.append((f, v, c))
                            if f in sp[c].provides:
                                self.bug_between_is_consumer = True
                    else:
                        inv_edges.add((c, v))
        self.edges = base | inv_edges
        self.all_cyclic = any(row[i] for i, row in enumerate(self._closure(self.edges)))

        # Brute force, in lexicographic order of positions.
        self.chain_feasible = False
        self.first_valid: tuple[int, ...] | None = None
        for perm in itertools.permutations(range(n)):
            chain = self.level_chain_ok(perm)
            self.chain_feasible |= chain
            if (
                self.first_valid is None
                and chain
                and not self.static_failures
                and self.respects(perm, self.edges)
                and self.facts_ok(perm)
            ):
                self.first_valid = perm
            if self.chain_feasible and self.first_valid is not None:
                break
        # a requirement nothing but its own pass provides, and not held at the start
        self.missing = [
            f
            for i in range(n)
            for f in sp[i].requires
            if f not in case.initial and not any(f in sp[j].provides for j in range(n) if j != i)
        ]

    def _closure(self, edges: set[tuple[int, int]]) -> list[list[bool]]:
        n = self.n
        r = [[False] * n for _ in range(n)]
        for u, v in edges:
            r[u][v] = True
        for k in range(n):
            for i in range(n):
                if r[i][k]:
                    for j in range(n):
                        if r[k][j]:
                            r[i][j] = True
        return r

    @staticmethod
    def respects(order: Sequence[int], edges: set[tuple[int, int]]) -> bool:
        at = {p: r for r, p in enumerate(order)}
        return all(at[u] < at[v] for u, v in edges)

    def level_chain_ok(self, order: Sequence[int]) -> bool:
        level = self.case.start
        for i in order:
            if self.sp[i].level_in != level:
                return False
            level = self.sp[i].level_out
        return True

    def facts_ok(self, order: Sequence[int]) -> bool:
        held = set(self.case.initial)
        for i in order:
            s = self.sp[i]
            if not s.requires <= held:
                return False
            held = (held - (s.invalidates - s.provides)) | s.provides
        return True

    def valid(self, order: Sequence[int], *, allow_between_bug: bool = False) -> bool:
        """Every documented constraint holds for ``order`` (a permutation of positions)."""
        static_ok = not self.static_failures or (allow_between_bug and self.bug_between_is_consumer)
        return (
            sorted(order) == list(range(self.n))
            and static_ok
            and self.respects(order, self.edges)
            and self.level_chain_ok(order)
            and self.facts_ok(order)
        )

    def verdict(self) -> str:
        """Why there is no valid order (the first reason), or 'valid'; for statistics."""
        invalidating = "" if self.edges == self.base and not self.static_failures else ", inv"
        for reason, hit in [
            ("valid", self.first_valid is not None),
            ("two lasts", len(self.lasts) > 1),
            ("no provider", self.missing),
            ("level chain", not self.chain_feasible),
            ("cycle", self.base_cyclic),
            ("invalidation", self.static_failures),
            ("cycle with invalidation", self.all_cyclic),
        ]:
            if hit:
                return reason + invalidating
        return "runtime facts" + invalidating

    def expected_errors(self) -> set[type[Exception]]:
        """The error classes that correctly describe why no valid order exists."""
        assert self.first_valid is None
        if len(self.lasts) > 1:
            return {ConflictError}
        out: set[type[Exception]] = set()
        if self.missing:
            out.add(UnsatisfiedError)
        if not self.chain_feasible:  # a broken level chain may surface as either
            out |= {UnsatisfiedError, CycleError}
        if self.base_cyclic:
            out.add(CycleError)
        elif self.static_failures:
            out.add(UnsatisfiedError)
        elif self.all_cyclic:
            out.add(CycleError)
        else:
            out.add(UnsatisfiedError)  # acyclic, but levels or runtime facts fail
        return out


def outcome(case: Case, passes: Sequence[Pass]) -> tuple[str, Any]:
    try:
        return "ok", case.run_plan(passes)
    except (CycleError, UnsatisfiedError, ConflictError) as e:
        return "error", e


# --------------------------------------------------------------------------- properties


any_cases = st.one_of(cases(), cases(focus=True))


@settings(max_examples=400, deadline=None)
@given(case=any_cases)
def test_plan_agrees_with_brute_force_oracle(case: Case) -> None:
    passes = case.build()
    oracle = Oracle(case)
    kind, got = outcome(case, passes)
    event(f"oracle: {oracle.verdict()}; plan: {kind if kind == 'ok' else type(got).__name__}")

    if kind == "ok":
        order = got.order
        assert sorted(order) == list(range(len(passes))), "every position exactly once"
        assert [id(p) for p in got.ordered_passes()] == [id(passes[i]) for i in order]
        if oracle.first_valid is None:
            if (
                "consumer-counted-as-between-provider" in KNOWN_BUGS
                and oracle.bug_between_is_consumer
                and oracle.valid(order, allow_between_bug=True)
            ):
                reject()  # see test_consumer_is_not_its_own_between_provider
            pytest.fail(
                f"plan returned {order}, but no order satisfies every documented constraint"
            )
        assert oracle.valid(order), f"plan {order} breaks a documented constraint"
        # ties broken by listed position: the lexicographically smallest valid order
        assert order == oracle.first_valid
    else:
        if oracle.first_valid is not None:
            pytest.fail(
                f"plan raised {type(got).__name__}: {got}; but {oracle.first_valid} "
                "satisfies every documented constraint"
            )
        expected = oracle.expected_errors()
        if (
            "cycle-reported-as-unsatisfied" in KNOWN_BUGS
            and oracle.base_cyclic
            and isinstance(got, UnsatisfiedError)
            and "must run first" in str(got)
            and CycleError in expected
        ):
            reject()  # see test_cycle_through_an_invalidator_is_reported_as_a_cycle
        assert type(got) in expected, f"{type(got).__name__}: {got}"


@settings(max_examples=100, deadline=None)
@given(case=any_cases)
def test_plan_is_the_same_on_every_run(case: Case) -> None:
    passes = case.build()
    first = outcome(case, passes)
    again = [outcome(case, passes), outcome(case, case.build())]  # same list; rebuilt classes
    for kind, got in again:
        assert kind == first[0]
        if kind == "ok":
            assert got.order == first[1].order
            assert dict(got.reasons) == dict(first[1].reasons)
        else:
            assert type(got) is type(first[1]) and str(got) == str(first[1])


_PLAN_IN_A_FRESH_PROCESS = """
import attrs
from pteflow.ir import Fact, Level
from pteflow.passes.base import Pass, PassInfo
from pteflow.passes.manager import plan

facts = [Fact(f"f{i}", f"fact {i}") for i in range(6)]


def make(name, **info):
    cls = attrs.frozen(type(name, (Pass,), {"__doc__": f"Do {name}."}))
    cls.info = PassInfo(name=name, level_in=Level.EAGER, **info)
    return cls()


print(plan([make("make", provides=facts), make("use", requires=facts)]).render())
for passes in ([make("use", requires=facts)],
               [make("a", provides=facts[:3], requires=facts[3:]),
                make("b", provides=facts[3:], requires=facts[:3])]):
    try:
        plan(passes)
    except Exception as e:
        print(e)
"""


def test_plan_text_and_errors_are_the_same_in_every_process() -> None:
    import subprocess
    import sys

    outputs = set()
    for seed in ("0", "1", "2", "3"):
        done = subprocess.run(
            [sys.executable, "-c", _PLAN_IN_A_FRESH_PROCESS],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1, "\n----\n".join(sorted(outputs))


@st.composite
def cases_with_free_passes(draw: st.DrawFn) -> tuple[Case, tuple[int, ...]]:
    """A case plus 2-3 passes of distinct classes constrained by nothing (but their level),
    inserted at random slots; returns the case and a permutation of the free passes."""
    case = draw(st.one_of(cases(max_n=4), cases(max_n=4, focus=True)))
    m = draw(st.integers(2, 3))
    free = [Spec(name=f"free{j}", level_in=case.start, level_out=case.start) for j in range(m)]
    specs = case.specs + tuple(free)
    free_idx = list(range(len(case.specs), len(specs)))
    pipeline = list(case.pipeline)
    fresh = list(case.fresh)
    for idx in free_idx:
        slot = draw(st.integers(0, len(pipeline)))
        pipeline.insert(slot, idx)
        fresh.insert(slot, False)
    perm = tuple(draw(st.permutations(range(m))))
    return attrs.evolve(case, specs=specs, pipeline=tuple(pipeline), fresh=tuple(fresh)), perm


@settings(max_examples=100, deadline=None)
@given(data=cases_with_free_passes())
def test_permuting_unconstrained_passes_permutes_the_output(
    data: tuple[Case, tuple[int, ...]],
) -> None:
    case, perm = data
    passes = case.build()
    slots = [i for i, p in enumerate(passes) if p.name.startswith("free")]
    permuted = list(passes)
    for slot, j in zip(slots, perm, strict=True):
        permuted[slot] = passes[slots[j]]
    kind, got = outcome(case, passes)
    kind2, got2 = outcome(case, permuted)
    assert kind == kind2
    if kind == "ok":
        assert got2.order == got.order, "the same positions in the same order"
        out = [p.name for p in got.ordered_passes() if p.name.startswith("free")]
        out2 = [p.name for p in got2.ordered_passes() if p.name.startswith("free")]
        assert out == [passes[s].name for s in slots], "free passes keep their listed order"
        assert out2 == [permuted[s].name for s in slots]
    else:
        assert type(got2) is type(got)


@settings(max_examples=100, deadline=None)
@given(case=st.one_of(cases(max_n=5), cases(max_n=5, focus=True)), data=st.data())
def test_a_pass_listed_twice_runs_twice(case: Case, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(case.pipeline) - 1))
    at = data.draw(st.integers(0, len(case.pipeline)))
    fresh = list(case.fresh)
    fresh[i] = False  # the original entry uses the class's shared instance ...
    twice = attrs.evolve(
        case,
        pipeline=(*case.pipeline[:at], case.pipeline[i], *case.pipeline[at:]),
        fresh=(*fresh[:at], False, *fresh[at:]),
    )
    passes = twice.build()  # ... and so does the inserted copy
    assert passes[at] is passes[i + (i >= at)], "the very same instance at two positions"
    kind, got = outcome(twice, passes)
    oracle = Oracle(twice)
    if kind == "ok":
        assert sorted(got.order) == list(range(len(passes)))
        same = passes[at]
        assert sum(p is same for p in got.ordered_passes()) == sum(p is same for p in passes)
        if oracle.first_valid is not None:
            assert got.order == oracle.first_valid


# --------------------------------------------------------------------------- examples


def test_unconstrained_passes_keep_their_listed_order() -> None:
    classes = [make_class(f"u{i}", {"level_in": E}) for i in range(5)]
    passes = [cls() for cls in classes]
    assert plan(passes).order == (0, 1, 2, 3, 4)
    backwards = passes[::-1]
    assert [p.name for p in plan(backwards).ordered_passes()] == ["u4", "u3", "u2", "u1", "u0"]


def test_same_instance_and_equal_instances_are_scheduled_at_each_position() -> None:
    Make = make_class("make", {"level_in": E, "provides": {FA}})
    Use = make_class("use", {"level_in": E, "requires": {FA}})
    make, use = Make(), Use()
    assert Make() == make and hash(Make()) == hash(make)  # equal values, distinct positions
    p = plan([use, make, use, Make()])
    assert p.order == (1, 3, 0, 2)
    assert [x.name for x in p.ordered_passes()] == ["make", "make", "use", "use"]
    assert p.ordered_passes()[2] is use and p.ordered_passes()[3] is use


def test_a_reader_runs_before_a_later_listed_invalidator() -> None:
    Kill = make_class("kill", {"level_in": E, "invalidates": {FA}})
    Read = make_class("read", {"level_in": E, "requires": {FA}})
    Make = make_class("make", {"level_in": E, "provides": {FA}})
    p = plan([Kill(), Make(), Read()])
    assert [x.name for x in p.ordered_passes()] == ["make", "read", "kill"]
    assert tuple(map(str, p.reasons[(2, 0)])) == ("reads fa before kill invalidates it",)
    assert [x.name for x in plan([Kill(), Read()], initial_facts=[FA]).ordered_passes()] == [
        "read",
        "kill",
    ]


def test_an_invalidated_fact_provided_again_in_between_is_accepted() -> None:
    Kill = make_class("kill", {"level_in": E, "invalidates": {FA}})
    Make = make_class("make", {"level_in": E, "provides": {FA}, "after": (Kill,)})
    Read = make_class("read", {"level_in": E, "requires": {FA}, "after": (Kill,)})
    p = plan([Read(), Make(), Kill()], initial_facts=[FA])
    assert [x.name for x in p.ordered_passes()] == ["kill", "make", "read"]
    Lone = make_class("read-late", {"level_in": E, "requires": {FB}, "after": (Kill,)})
    Kill2 = make_class("kill-b", {"level_in": E, "invalidates": {FB}, "before": (Lone,)})
    with pytest.raises(UnsatisfiedError) as info:
        plan([Kill2(), Lone()], initial_facts=[FB])
    assert str(info.value) == (
        "read-late#1 requires fact 'fb' (fact b), but kill-b#0 invalidates it "
        "and must run first; add a pass providing it after kill-b, or drop read-late"
    )


def _cycle_steps(message: str) -> list[tuple[str, str, str]]:
    prefix = "the ordering constraints form a cycle: "
    assert message.startswith(prefix), message
    steps = re.findall(r"(\S+#\d+) -> (\S+#\d+) \((.*?)\)(?:, |$)", message[len(prefix) :])
    assert steps, message
    return steps


def test_cycle_message_lists_the_cycle_in_order_with_each_edge_reason() -> None:
    # export-like conversion --provides fa--> user of fa --before--> tail (E) --level--> convert
    Convert = make_class("convert", {"level_in": E, "level_out": A, "provides": {FA}})
    Tail = make_class("tail", {"level_in": E})
    Use = make_class(
        "use", {"level_in": A, "requires": {FA}, "before": (Tail,), "after": (Convert,)}
    )
    Other = make_class("bystander", {"level_in": E})
    passes = [Other(), Use(), Tail(), Convert()]
    with pytest.raises(CycleError) as info:
        plan(passes)
    steps = _cycle_steps(str(info.value))
    expected = {
        ("convert#3", "use#1"): {
            "provides fa",
            "use declares after convert",
            "level order: eager->aten before aten",
        },
        ("use#1", "tail#2"): {"use declares before tail"},
        ("tail#2", "convert#3"): {"level order: eager before eager->aten"},
    }
    assert len(steps) == 3
    for (u, v, why), (u2, _, _) in zip(steps, steps[1:] + steps[:1], strict=True):
        assert v == u2, "each step starts where the previous one ended"
        assert set(why.split("; ")) == expected[(u, v)]
    assert "bystander" not in str(info.value)


@pytest.mark.parametrize("kind", ["ordered", "last", "invalidates"])
def test_cycle_message_names_ordered_last_and_invalidation_edges(kind: str) -> None:
    if kind == "ordered":
        P1 = make_class("part-a", {"level_in": E, "ordered": True})
        P2 = make_class("part-b", {"level_in": E, "ordered": True, "before": (P1,)})
        passes, reason = [P1(), P2()], "listed earlier among ordered passes (first pick)"
    elif kind == "last":
        Emit = make_class("emit", {"level_in": E, "last": True})
        Tidy = make_class("tidy", {"level_in": E, "after": (Emit,)})
        passes, reason = [Emit(), Tidy()], "emit runs last"
    else:
        # each reads the fact the other invalidates: each must run before the other
        Swap1 = make_class("swap-one", {"level_in": E, "requires": {FB}, "invalidates": {FA}})
        Swap2 = make_class("swap-two", {"level_in": E, "requires": {FA}, "invalidates": {FB}})
        passes, reason = [Swap1(), Swap2()], "reads fa before swap-one invalidates it"
    with pytest.raises(CycleError) as info:
        plan(passes, initial_facts=[FA, FB])
    steps = _cycle_steps(str(info.value))
    assert any(reason in why.split("; ") for _, _, why in steps), str(info.value)


def test_unsatisfied_fact_names_the_fact_and_the_registry_passes_that_provide_it() -> None:
    Use = make_class("use-kv", {"level_in": E, "requires": {FB}})
    registry = {
        "add-kv-cache": make_class("add-kv-cache", {"level_in": E, "provides": {FB, FC}}),
        "add-kv-cache-quantized": make_class(
            "add-kv-cache-quantized", {"level_in": E, "provides": {FB}}
        ),
        "unrelated": make_class("unrelated", {"level_in": E, "provides": {FC}}),
    }
    with pytest.raises(UnsatisfiedError) as info:
        PassManager([Use()], registry=registry).plan()
    msg = str(info.value)
    assert "use-kv#0" in msg and "'fb'" in msg and "fact b" in msg
    assert "add one of: add-kv-cache, add-kv-cache-quantized" in msg
    assert "unrelated" not in msg
    with pytest.raises(UnsatisfiedError, match="no known pass provides it"):
        plan([Use()])
    plan([Use()], initial_facts=[FB])  # an initial fact needs no provider


def test_unsatisfied_level_names_the_conversion_to_add() -> None:
    Lint = make_class("lint-aten", {"level_in": A})
    registry = {
        "export": make_class("export", {"level_in": E, "level_out": A}),
        "to-edge": make_class("to-edge", {"level_in": A, "level_out": D}),
    }
    with pytest.raises(UnsatisfiedError) as info:
        plan([Lint()], registry=registry)
    msg = str(info.value)
    assert "lint-aten#0 reads aten programs" in msg and "eager" in msg
    assert msg.endswith("add export")
    assert plan([Lint()], start_level=A).order == (0,)


def test_two_last_passes_conflict_naming_both() -> None:
    Emit = make_class("emit", {"level_in": E, "last": True})
    Save = make_class("save", {"level_in": E, "last": True})
    Mid = make_class("mid", {"level_in": E})
    with pytest.raises(ConflictError) as info:
        plan([Emit(), Mid(), Save()])
    assert "emit#0 and save#2 both must run last" in str(info.value)
    assert plan([Emit(), Mid()]).order == (1, 0)


@attrs.frozen
class Recorder(Pass):
    """Record that the pass ran (test only)."""

    info: ClassVar[PassInfo] = PassInfo(name="recorder", level_in=E)
    ran: list[int] = attrs.field(factory=list, eq=False)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        self.ran.append(ctx.position)
        return PassResult(program, False)


@attrs.frozen
class NeedsSdk(Pass):
    """Pretend to lower to a backend whose SDK is missing (test only)."""

    info: ClassVar[PassInfo] = PassInfo(name="needs-sdk", level_in=E)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        raise AssertionError("an unavailable pass must never run")

    def unavailable_reason(self) -> str | None:
        return "the Foo SDK is not installed (set FOO_SDK_ROOT)"


def _program() -> Program:
    import torch

    torch.manual_seed(0)
    return Program.eager(torch.nn.Linear(4, 2), (torch.randn(1, 4),))


def test_unavailable_pass_is_refused_before_any_pass_runs() -> None:
    rec = Recorder()
    manager = PassManager([rec, NeedsSdk()], verify="each")
    with pytest.raises(UnavailableError) as info:
        manager.check_available()
    assert str(info.value) == (
        "needs-sdk#1 cannot run on this machine: the Foo SDK is not installed (set FOO_SDK_ROOT)"
    )
    with pytest.raises(UnavailableError):
        manager.run(_program())
    assert rec.ran == [], "the recorder listed first must not have run"
    # control: without the unavailable pass the recorder does run
    PassManager([rec], verify="each").run(_program())
    assert rec.ran == [0]


def test_unschedulable_pipeline_is_refused_before_any_pass_runs() -> None:
    rec = Recorder()
    Use = make_class("use", {"level_in": E, "requires": {FA}})
    with pytest.raises(PipelineError):
        PassManager([rec, Use()]).run(_program())
    assert rec.ran == []


# --------------------------------------------------------------------------- known bugs


def test_consumer_is_not_its_own_between_provider() -> None:
    Inv = make_class("inv", {"level_in": E, "invalidates": {FA}})
    Cons = make_class("cons", {"level_in": E, "requires": {FA}, "provides": {FA}, "after": (Inv,)})
    Prov = make_class("prov", {"level_in": E, "provides": {FA}})
    results = []
    for passes in ([Inv(), Prov(), Cons()], [Prov(), Inv(), Cons()]):
        kind, got = outcome(Case((), (), (), E, frozenset()), passes)
        results.append(type(got).__name__ if kind == "error" else "ok")
    assert results[0] == results[1], f"listed order changed the outcome: {results}"


def test_cycle_through_an_invalidator_is_reported_as_a_cycle() -> None:
    Kill = make_class("kill", {"level_in": E, "invalidates": {FA}})
    Read = make_class(
        "read", {"level_in": E, "requires": {FA}, "after": (Kill,), "before": (Kill,)}
    )
    Make = make_class("make", {"level_in": E, "provides": {FA}})
    with pytest.raises(CycleError):
        plan([Make(), Kill(), Read()])


def test_self_provided_requirement_is_reported_as_unprovided() -> None:
    Self = make_class("self-feed", {"level_in": E, "requires": {FA}, "provides": {FA}})
    with pytest.raises(UnsatisfiedError) as info:
        plan([Self()])
    assert "invalidated" not in str(info.value)
    assert "'fa'" in str(info.value)
