"""The PassManager: order passes from their declared contracts, check, run, record.

Ordering is data. Every edge of the dependency graph has a reason:

* ``provides F``: a provider of fact F runs before every consumer of F;
* ``after X`` / ``before X``: explicit ordering against a pass class;
* ``level``: a pass reading level L runs after the conversion that makes L and
  before the one that leaves it;
* ``ordered``: passes marked ``ordered`` (partitioners) keep the listed order;
* ``last``: a pass marked ``last`` (emit) runs after every other;
* ``invalidates F``: a consumer of F runs before a pass that invalidates F,
  unless the other constraints already put the invalidator first, in which
  case some provider of F must run between them (else: unsatisfiable).

Ties are broken by the position in the pipeline, so the order is the same on
every run, and passes of equal rank keep their listed order. Passes are keyed
by position: the same pass may appear twice.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs
import networkx as nx

from pteflow.ir import Fact, Level, Program, invariants, views
from pteflow.ir.errors import (
    ConflictError,
    CycleError,
    FactError,
    InvariantError,
    PassFailedError,
    PipelineError,
    UnavailableError,
    UnsatisfiedError,
)
from pteflow.ir.hashing import structural_hash

from .base import Pass, PassContext
from .registry import providers as fact_providers

if TYPE_CHECKING:
    from .cache import CacheSession, PassCache

Verify = Literal["each", "boundaries", "off"]
VERIFY_MODES: tuple[Verify, ...] = ("each", "boundaries", "off")


# --------------------------------------------------------------------------- planning


@attrs.frozen
class Plan:
    """An ordered pipeline and the reasons for its order."""

    passes: tuple[Pass, ...]  # as listed
    order: tuple[int, ...]  # positions, in run order
    reasons: Mapping[tuple[int, int], tuple[str, ...]]  # (u, v): why u runs before v

    def ordered_passes(self) -> list[Pass]:
        return [self.passes[i] for i in self.order]

    def why(
        self, position: int, *, implied: bool = True, direct: set[tuple[int, int]] | None = None
    ) -> list[str]:
        """Why the pass at ``position`` sits where it does: its incoming edges.

        A pass that runs last gets one line for that, not one per other pass.
        ``implied=False`` leaves out ordering constraints that a chain of other
        constraints already implies (a pass after all 37 of QNN's edge passes
        shows the last one); fact edges (``provides``/``reads``) always show.
        ``direct``: ``direct_edges()``, when the caller asks for many positions.
        """
        out = []
        last = f"{self.passes[position].name} runs last"
        if self.passes[position].contract.last:
            out.append("runs last (after every other pass)")
        keep = None if implied else (direct if direct is not None else self.direct_edges())
        for (u, v), why in sorted(self.reasons.items()):
            if v != position:
                continue
            for w in why:
                if w == last:
                    continue
                if keep is not None and (u, v) not in keep and not _is_fact_reason(w):
                    continue
                out.append(f"after {self.passes[u].name}#{u}: {w}")
        return out

    def direct_edges(self) -> set[tuple[int, int]]:
        """The edges of the transitive reduction of the constraint graph."""
        g = nx.DiGraph(list(self.reasons))
        return set(nx.transitive_reduction(g).edges)

    def render(self, *, all_reasons: bool = False) -> str:
        """The text ``driver plan`` prints (implied constraints only with ``all_reasons``)."""
        direct = None if all_reasons else self.direct_edges()
        lines, hidden = [], 0
        for rank, pos in enumerate(self.order, 1):
            p = self.passes[pos]
            lv = (
                p.contract.level_in.label
                if not p.contract.is_conversion
                else f"{p.contract.level_in.label}->{p.contract.level_out.label}"
            )
            lines.append(f"{rank:3d}. {p.describe()}  [{lv}]  {type(p).doc()}")
            shown = self.why(pos, implied=all_reasons, direct=direct)
            if direct is not None:
                hidden += len(self.why(pos)) - len(shown)
            lines.extend(f"       - {w}" for w in shown)
        if hidden:
            lines.append(
                f"({hidden} constraint(s) implied by the ones shown are left out; "
                "--all-reasons lists them)"
            )
        return "\n".join(lines)


def _is_fact_reason(why: str) -> bool:
    return why.startswith(("provides ", "reads "))


def _label(passes: Sequence[Pass], i: int) -> str:
    return f"{passes[i].name}#{i}"


class _Graph:
    """A DiGraph over pass positions, each edge with its reasons."""

    def __init__(self, n: int):
        self.g = nx.DiGraph()
        self.g.add_nodes_from(range(n))
        self.reasons: dict[tuple[int, int], list[str]] = defaultdict(list)

    def edge(self, u: int, v: int, why: str) -> None:
        if u == v:
            return
        self.g.add_edge(u, v)
        if why not in self.reasons[(u, v)]:
            self.reasons[(u, v)].append(why)


def _level_key(p: Pass) -> tuple[Level, Level]:
    return (p.contract.level_in, p.contract.level_out)


def _precedes(a: tuple[Level, Level], b: tuple[Level, Level]) -> bool:
    """Must a pass of level key ``a`` run before one of key ``b``?"""
    return a != b and a[1] <= b[0]


def plan(
    passes: Sequence[Pass],
    *,
    start_level: Level = Level.EAGER,
    initial_facts: Iterable[Fact] = (),
    registry: Mapping[str, type[Pass]] | None = None,
    refuted: Iterable[Fact] = (),
) -> Plan:
    """Order ``passes`` from their contracts.

    Facts marked ``assumed`` that a pass names hold at the start unless ``refuted`` (the
    manager checks them on the input program); once the order is known every pass's
    ``check_schedule`` sees the passes before and after it.

    Raises:
        CycleError: the constraints form a cycle (named, with each edge's reason).
        UnsatisfiedError: a required fact or level nothing provides (with the
            registry's passes that could).
        ConflictError: two passes must both be last.
    """
    passes = tuple(passes)
    n = len(passes)
    named = {f for p in passes for f in p.contract.requires | p.contract.invalidates}
    assumed = {f for f in named if f.assumed} - set(refuted)
    initial = frozenset(initial_facts) | assumed
    graph = _Graph(n)

    # last
    lasts = [i for i, p in enumerate(passes) if p.contract.last]
    if len(lasts) > 1:
        raise ConflictError(
            f"passes {' and '.join(_label(passes, i) for i in lasts)} both "
            "must run last; keep one of them"
        )
    for i in lasts:
        for j in range(n):
            graph.edge(j, i, f"{passes[i].name} runs last")

    # providers -> consumers (facts in name order: messages and reasons are stable
    # across processes, whatever the hash seed)
    def by_name(fs: Iterable[Fact]) -> list[Fact]:
        return sorted(fs, key=lambda f: f.name)

    providers: dict[Fact, list[int]] = defaultdict(list)
    consumers: dict[Fact, list[int]] = defaultdict(list)
    invalidators: dict[Fact, list[int]] = defaultdict(list)
    for i, p in enumerate(passes):
        for f in by_name(p.contract.provides):
            providers[f].append(i)
        for f in by_name(p.contract.requires):
            consumers[f].append(i)
        for f in by_name(p.contract.invalidates - p.contract.provides):
            invalidators[f].append(i)
    for f in by_name(consumers):
        cs = consumers[f]
        # a consumer that is its own only provider has nothing to read from
        lonely = [c for c in cs if not any(pr != c for pr in providers.get(f, ()))]
        if lonely and f not in initial:
            c = lonely[0]
            could = fact_providers(registry or {}, f)
            hint = f"add one of: {', '.join(could)}" if could else "no known pass provides it"
            raise UnsatisfiedError(
                f"{_label(passes, c)} requires fact {f.name!r} "
                f"({f.meaning}), which no other pass in the pipeline provides; "
                f"{hint}"
            )
        for c in cs:
            for pr in providers.get(f, ()):
                graph.edge(pr, c, f"provides {f.name}")

    # after / before (by class, every instance in the pipeline; subclasses count:
    # "after every partitioner")
    by_base: dict[type, list[int]] = defaultdict(list)
    for i, p in enumerate(passes):
        for base_cls in type(p).__mro__:
            by_base[base_cls].append(i)
    for i, p in enumerate(passes):
        for cls in p.contract.after:
            for j in by_base.get(cls, ()):
                graph.edge(j, i, f"{p.name} declares after {cls.info.name}")
        for cls in p.contract.before:
            for j in by_base.get(cls, ()):
                graph.edge(i, j, f"{p.name} declares before {cls.info.name}")

    # level order: chain the distinct level keys, edges between consecutive groups
    groups: dict[tuple[Level, Level], list[int]] = defaultdict(list)
    for i, p in enumerate(passes):
        groups[_level_key(p)].append(i)
    keys = sorted(groups)
    for a, b in itertools.pairwise(keys):
        if _precedes(a, b):
            why = _level_reason(a, b)
            for u in groups[a]:
                for v in groups[b]:
                    graph.edge(u, v, why)

    # ordered passes keep their listed order
    ordered = [i for i, p in enumerate(passes) if p.contract.ordered]
    for u, v in itertools.pairwise(ordered):
        graph.edge(u, v, "listed earlier among ordered passes (first pick)")

    _refuse_cycles(passes, graph)  # a cycle is a cycle, whatever invalidation adds later

    # invalidation, decided on the graph of the other constraints
    base = graph.g.copy()
    descendants: dict[int, set[int]] = {}

    def after_(u: int) -> set[int]:
        if u not in descendants:
            descendants[u] = nx.descendants(base, u)
        return descendants[u]

    for f in by_name(invalidators):
        for inv in invalidators[f]:
            # conversions first: a refusal then names the reader the pipeline cannot drop
            readers = sorted(
                consumers.get(f, ()), key=lambda i: not passes[i].contract.is_conversion
            )
            for c in readers:
                if c == inv:
                    continue
                if c in after_(inv):
                    between = [
                        pr
                        for pr in providers.get(f, ())
                        if pr not in (inv, c) and pr in after_(inv) and c in after_(pr)
                    ]
                    if not between:
                        could = sorted(
                            name for name, cls in (registry or {}).items() if f in cls.info.provides
                        )
                        fix = f"add {' or '.join(could)}" if could else "add a pass providing it"
                        raise UnsatisfiedError(
                            f"{_label(passes, c)} requires fact {f.name!r} ({f.meaning}), but "
                            f"{_label(passes, inv)} invalidates it and must run first; {fix} "
                            f"after {passes[inv].name}"
                            + (
                                ""
                                if passes[c].contract.is_conversion
                                else f", or drop {passes[c].name}"
                            )
                        )
                else:
                    graph.edge(c, inv, f"reads {f.name} before {passes[inv].name} invalidates it")

    _refuse_cycles(passes, graph)
    order = tuple(nx.lexicographical_topological_sort(graph.g, key=lambda i: i))
    _check_levels(passes, order, start_level, registry)
    _check_runtime_facts(passes, order, initial)
    _check_schedule(passes, order)
    return Plan(passes, order, {k: tuple(v) for k, v in graph.reasons.items()})


def _refuse_cycles(passes: Sequence[Pass], graph: _Graph) -> None:
    if nx.is_directed_acyclic_graph(graph.g):
        return
    cycle = nx.find_cycle(graph.g)
    steps = [
        f"{_label(passes, u)} -> {_label(passes, v)} ({'; '.join(graph.reasons[(u, v)])})"
        for u, v in cycle
    ]
    raise CycleError("the ordering constraints form a cycle: " + ", ".join(steps))


def _level_reason(a: tuple[Level, Level], b: tuple[Level, Level]) -> str:
    def show(k: tuple[Level, Level]) -> str:
        return k[0].label if k[0] == k[1] else f"{k[0].label}->{k[1].label}"

    return f"level order: {show(a)} before {show(b)}"


def _check_levels(
    passes: Sequence[Pass],
    order: Sequence[int],
    start: Level,
    registry: Mapping[str, type[Pass]] | None,
) -> None:
    level = start
    for i in order:
        info = passes[i].contract
        if info.level_in != level:
            could = sorted(
                name
                for name, cls in (registry or {}).items()
                if cls.info.level_in == level and cls.info.level_out == info.level_in
            )
            hint = f"; add {' or '.join(could)}" if could else ""
            raise UnsatisfiedError(
                f"{_label(passes, i)} reads {info.level_in.label} programs, but the program is "
                f"{level.label} at that point{hint}"
            )
        level = info.level_out


def _check_runtime_facts(
    passes: Sequence[Pass], order: Sequence[int], initial: frozenset[Fact]
) -> None:
    held = set(initial)
    for i in order:
        info = passes[i].contract
        missing = info.requires - held
        if missing:  # only reachable through invalidation the rules above allowed
            raise UnsatisfiedError(
                f"{_label(passes, i)} requires "
                f"{', '.join(sorted(f.name for f in missing))}, which an "
                "earlier pass invalidated"
            )
        held -= info.invalidates - info.provides
        held |= info.provides


def _check_schedule(passes: Sequence[Pass], order: Sequence[int]) -> None:
    """Ask every pass whether it can run between the passes before and after it."""
    ordered = [passes[i] for i in order]
    for rank, i in enumerate(order):
        why = passes[i].check_schedule(ordered[:rank], ordered[rank + 1 :])
        if why:
            raise ConflictError(f"{_label(passes, i)}: {why}")


def refuted_facts(passes: Sequence[Pass], program: Program) -> frozenset[Fact]:
    """The assumed facts the passes name that do not hold of ``program`` (checked on it)."""
    named = {f for p in passes for f in p.contract.requires | p.contract.invalidates}
    return frozenset(f for f in named if f.assumed and f not in program.facts and f.check(program))


# --------------------------------------------------------------------------- running


@attrs.frozen
class PassRecord:
    """What happened in one pass."""

    position: int
    name: str
    options: str
    level_in: str
    level_out: str
    wall_s: float
    cpu_s: float
    check_s: float
    ops_before: int
    ops_after: int
    facts_gained: tuple[str, ...]
    facts_lost: tuple[str, ...]
    modified: bool
    delegated: Mapping[str, int] = attrs.field(factory=dict)
    cached: bool = False  # restored from the pass cache, not run

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class RunResult:
    program: Program
    records: tuple[PassRecord, ...]
    plan: Plan
    schedule_s: float
    cache: Mapping[str, Any] | None = None  # the cache session's stats (load_s, store_s, ...)


def _delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Ops newly inside delegates, per backend: what this pass's partitioner took."""
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


#: (kind, position, pass, record): kind "start" / "end" (with the record) around every pass,
#: "restart" when a run that resumed from the cache starts again without it
Event = Callable[[str, int, Pass, "PassRecord | None"], None]


class PassObserver:
    """Hooks the manager calls around every pass (printing, dumps, numerics, reproducers).

    ``program_in`` may be edited in place by the pass: read what you need from
    it in ``before`` (``after`` sees it as the pass left it). Observers must not
    change the programs they see.
    """

    #: True for observers that must see every pass run (IR dumps, numerics, a reference
    #: program): the driver then does not resume from the pass-result cache.
    needs_every_pass: bool = False
    #: the command-line flag that asked for the observer (for messages)
    flag: str = ""

    def before(self, rank: int, pass_: Pass, program_in: Program) -> None:
        """Called before ``pass_`` (at run position ``rank``) runs on ``program_in``."""

    def after(self, rank: int, pass_: Pass, program_out: Program, record: PassRecord) -> None:
        """Called after ``pass_`` ran and its output passed the configured checks."""

    def failed(self, rank: int, pass_: Pass, error: BaseException) -> None:
        """Called when ``pass_`` raised or broke an invariant, before the error propagates."""


def _describe_options(p: Pass) -> str:
    """The options part of ``p.spec()`` (``{k=v,...}`` or empty), as ``--passes`` reads it."""
    return p.spec()[len(p.name) :]


class PassManager:
    """Schedule and run a list of passes.

    ``verify``: ``each`` checks the level invariant and every claimed fact after
    every pass; ``boundaries`` only after level changes and at the end
    (claims made since the last check are checked then, and blamed on the
    pass that made them); ``off`` checks nothing.
    """

    def __init__(
        self,
        passes: Sequence[Pass],
        *,
        verify: Verify = "boundaries",
        registry: Mapping[str, type[Pass]] | None = None,
    ):
        if verify not in VERIFY_MODES:
            raise PipelineError(f"verify mode {verify!r} is not one of {', '.join(VERIFY_MODES)}")
        for p in passes:
            if not isinstance(p, Pass):
                raise TypeError(f"not a Pass: {p!r}")
        self.passes = tuple(passes)
        self.verify = verify
        self.registry = registry

    def plan(self, *, start_level: Level = Level.EAGER, initial_facts: Iterable[Fact] = ()) -> Plan:
        return plan(
            self.passes,
            start_level=start_level,
            initial_facts=initial_facts,
            registry=self.registry,
        )

    def check_available(self) -> None:
        """Raise UnavailableError for the first pass that cannot run on this machine."""
        for i, p in enumerate(self.passes):
            reason = p.unavailable_reason()
            if reason:
                raise UnavailableError(
                    f"{_label(self.passes, i)} cannot run on this machine: {reason}"
                )

    def run(
        self,
        program: Program,
        *,
        on_event: Event | None = None,
        upcoming: Sequence[Pass] = (),
        observers: Sequence[PassObserver] = (),
        cache: PassCache | None = None,
    ) -> RunResult:
        """Plan, check availability, then run every pass in order.

        ``upcoming``: passes that will run after these (a prefix run of a longer
        pipeline); running passes see them in ``ctx.upcoming``.
        ``observers``: ``PassObserver`` hooks called before and after every pass.

        In ``each`` mode a pass that reports ``modified=False`` is also checked
        not to have changed the program's structure (``ir.hashing``).
        ``cache``: start after the longest prefix of the order whose result is cached,
        and store the results of the passes that run (see ``pteflow.passes.cache``);
        the skipped passes get records with ``cached=True``.

        A pass that fails on a program restored from the cache is not reported at once:
        the entries it was restored from are dropped (one warning) and the run starts
        again from ``program`` without reading the cache; only a failure there counts.

        Raises:
            PipelineError: the pipeline cannot be scheduled or run here (before any work).
            PassFailedError: a pass raised; chained to the original error.
            InvariantError: a pass broke a level invariant or a claimed fact.
        """
        args = (program, on_event, upcoming, observers, cache)
        try:
            return self._run(*args, read_cache=True)
        except _FailedOnRestored as retry:
            if on_event:
                on_event("restart", retry.position, retry.pass_, None)
            return self._run(*args, read_cache=False)

    def _run(
        self,
        program: Program,
        on_event: Event | None,
        upcoming: Sequence[Pass],
        observers: Sequence[PassObserver],
        cache: PassCache | None,
        *,
        read_cache: bool,
    ) -> RunResult:
        t0 = time.perf_counter()
        the_plan = plan(
            self.passes,
            start_level=program.level,
            initial_facts=program.facts,
            registry=self.registry,
            refuted=refuted_facts(self.passes, program),
        )
        self.check_available()
        schedule_s = time.perf_counter() - t0
        if self.verify == "each":
            self._check(program, {}, None)

        order = the_plan.order
        records = []
        pending: dict[Fact, str] = {}  # claims not yet checked -> the pass that made them
        session, first = None, 0
        ops = None  # node count of ``program``: a pass's count after is the next one's before
        if cache is not None:
            ordered = [self.passes[i] for i in order]
            session = cache.session(ordered, program, upcoming, read=read_cache)
            ops_in = views.node_count(program)
            first, program = session.resume(program)
            if first:
                ops = views.node_count(program)
                records.extend(self._cached_records(session, order, first, on_event, ops_in, ops))
        restored = first > 0  # a failure from here on is retried without the cache
        for rank, pos in enumerate(order):
            if rank < first:
                continue
            p = self.passes[pos]
            if on_event:
                on_event("start", pos, p, None)
            if self.verify == "boundaries" and p.contract.is_conversion and pending:
                # check claims on the level they were made at: a conversion may erase
                # the evidence (constant propagation folds what a checker looks for)
                self._check_claims(program, pending)
                pending = {}
            ctx = PassContext(
                position=pos,
                upcoming=tuple(self.passes[j] for j in order[rank + 1 :]) + tuple(upcoming),
            )
            for obs in observers:
                obs.before(rank, p, program)
            ops_before = views.node_count(program) if ops is None else ops
            delegated_before = views.delegated_node_count(program) if p.contract.delegation else {}
            hash_before = structural_hash(program) if self.verify == "each" else None
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                try:
                    result = p.apply(program, ctx)
                except InvariantError as e:
                    if e.pass_name is None:
                        raise InvariantError(str(e), pass_name=p.name) from e
                    raise
                except Exception as e:
                    step = (rank + 1, len(order))
                    raise PassFailedError(p.name, pos, _describe_options(p), e, step) from e
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                new = result.program
                for f in p.contract.provides:
                    pending[f] = p.name
                k0 = time.perf_counter()
                boundary = p.contract.is_conversion or rank == len(order) - 1
                if self.verify == "each" or (self.verify == "boundaries" and boundary):
                    self._check(new, pending, p.name)
                    pending = {}
                if hash_before is not None and not result.modified:
                    _check_unchanged(p, hash_before, new)
                check_s = time.perf_counter() - k0
            except (InvariantError, PassFailedError) as e:
                # a backend this machine cannot use (no SDK, no device) is not a sign of a bad
                # entry: it fails the same on a fresh program, so it is not worth a rerun
                unavailable = isinstance(e.__cause__, UnavailableError)
                if restored and session is not None and not unavailable:
                    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
                    session.drop_restored(f"{p.name} failed on a restored program ({first_line})")
                    raise _FailedOnRestored(pos, p) from e
                for obs in observers:
                    obs.failed(rank, p, e)
                raise
            ops_after = ops = views.node_count(new)
            records.append(
                PassRecord(
                    position=pos,
                    name=p.name,
                    options=_describe_options(p),
                    level_in=p.contract.level_in.label,
                    level_out=p.contract.level_out.label,
                    wall_s=wall,
                    cpu_s=cpu,
                    check_s=check_s,
                    ops_before=ops_before,
                    ops_after=ops_after,
                    facts_gained=tuple(sorted(f.name for f in new.facts - program.facts)),
                    facts_lost=tuple(sorted(f.name for f in program.facts - new.facts)),
                    modified=result.modified,
                    delegated=_delta(delegated_before, views.delegated_node_count(new))
                    if p.contract.delegation
                    else {},
                )
            )
            for obs in observers:
                obs.after(rank, p, new, records[-1])
            if on_event:
                on_event("end", pos, p, records[-1])
            if session is not None:
                session.stage(rank, program, new, result.modified, records[-1].to_json())
                if not pending:  # every claim so far is checked: staged results are sound
                    session.commit()
            program = new
        stats = session.finish() if session is not None else None
        return RunResult(program, tuple(records), the_plan, schedule_s, stats)

    def _cached_records(
        self,
        session: CacheSession,
        order: Sequence[int],
        first: int,
        on_event: Event | None,
        ops_in: int,
        ops_restored: int,
    ) -> list[PassRecord]:
        """Records for the passes the cache skipped: as stored when they ran, marked cached.

        They took no time (the load is ``RunResult.cache["load_s"]``), and their op counts
        chain from the input's to the restored program's.
        """
        out = []
        ops = ops_in
        for rank, header in enumerate(session.headers(first)):
            pos = order[rank]
            p = self.passes[pos]
            if on_event:
                on_event("start", pos, p, None)
            stored = (header or {}).get("record") or {}
            out.append(
                PassRecord(
                    position=pos,
                    name=p.name,
                    options=_describe_options(p),
                    level_in=p.contract.level_in.label,
                    level_out=p.contract.level_out.label,
                    wall_s=0.0,
                    cpu_s=0.0,
                    check_s=0.0,
                    ops_before=ops,
                    ops_after=ops_restored if rank == first - 1 else stored.get("ops_after", ops),
                    facts_gained=tuple(stored.get("facts_gained", ())),
                    facts_lost=tuple(stored.get("facts_lost", ())),
                    modified=stored.get("modified", True),
                    delegated=stored.get("delegated", {}),
                    cached=True,
                )
            )
            ops = out[-1].ops_after
            if on_event:
                on_event("end", pos, p, out[-1])
        return out

    @staticmethod
    def _check(program: Program, claims: Mapping[Fact, str], pass_name: str | None) -> None:
        try:
            invariants.check_level(program)
        except InvariantError as e:
            raise InvariantError(str(e), pass_name=pass_name) from e

        PassManager._check_claims(program, claims)

    @staticmethod
    def _check_claims(program: Program, claims: Mapping[Fact, str]) -> None:
        for fact, claimant in sorted(claims.items(), key=lambda kv: kv[0].name):
            if fact not in program.facts:
                continue  # invalidated later: nothing to check
            why = fact.check(program)
            if why:
                raise FactError(
                    f"claims fact {fact.name!r} ({fact.meaning}), but {why}", pass_name=claimant
                )


class _FailedOnRestored(Exception):
    """A pass failed on a program restored from the cache: run again without reading it."""

    def __init__(self, position: int, pass_: Pass):
        super().__init__(position, pass_)
        self.position, self.pass_ = position, pass_


def _check_unchanged(p: Pass, hash_before: str, program: Program) -> None:
    """A pass that reported ``modified=False`` must leave the structure as it found it."""
    after = structural_hash(program)
    if after != hash_before:
        raise InvariantError(
            f"reported modified=False, but the program's structure changed "
            f"(structural hash {hash_before[:12]} -> {after[:12]}); return "
            "PassResult(program, True) when the pass edits the graph or module",
            pass_name=p.name,
        )
