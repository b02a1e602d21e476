"""Planning: order passes from their declared contracts, or refuse with the reason.

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
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import attrs
import networkx as nx

from pteflow.ir import Fact, Level, Program
from pteflow.ir.errors import (
    ConflictError,
    CycleError,
    UnsatisfiedError,
)

from .base import Pass
from .partition.keep_whole import bind as bind_keep_whole
from .reasons import Kind, Reason
from .registry import providers as fact_providers


@attrs.frozen
class Plan:
    """An ordered pipeline and the reasons for its order."""

    passes: tuple[Pass, ...]  # as listed, with plan-owned options set (``keep_whole.bind``)
    order: tuple[int, ...]  # positions, in run order
    reasons: Mapping[tuple[int, int], tuple[Reason, ...]]  # (u, v): why u runs before v

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
        if self.passes[position].contract.last:
            out.append("runs last (after every other pass)")
        keep = None if implied else (direct if direct is not None else self.direct_edges())
        for (u, v), why in sorted(self.reasons.items()):
            if v != position:
                continue
            for w in why:
                if w.kind is Kind.LAST:  # said once, above
                    continue
                if keep is not None and (u, v) not in keep and not w.about_facts:
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


def pass_label(passes: Sequence[Pass], i: int) -> str:
    return f"{passes[i].name}#{i}"


class _Graph:
    """A DiGraph over pass positions, each edge with its reasons."""

    def __init__(self, n: int):
        self.g = nx.DiGraph()
        self.g.add_nodes_from(range(n))
        self.reasons: dict[tuple[int, int], list[Reason]] = defaultdict(list)

    def edge(self, u: int, v: int, why: Reason) -> None:
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
    """Order ``passes`` from their contracts; set the options the plan owns.

    The plan's passes are ``passes`` with to-edge's ``keep_whole_for`` set to the partition
    passes scheduled after it (``partition.keep_whole.bind``); run those, not ``passes``.

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
            f"passes {' and '.join(pass_label(passes, i) for i in lasts)} both "
            "must run last; keep one of them"
        )
    for i in lasts:
        for j in range(n):
            graph.edge(j, i, Reason(Kind.LAST, passes[i].name))

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
                f"{pass_label(passes, c)} requires fact {f.name!r} "
                f"({f.meaning}), which no other pass in the pipeline provides; "
                f"{hint}"
            )
        for c in cs:
            for pr in providers.get(f, ()):
                graph.edge(pr, c, Reason(Kind.PROVIDES, f.name))

    # after / before (by class, every instance in the pipeline; subclasses count:
    # "after every partitioner")
    by_base: dict[type, list[int]] = defaultdict(list)
    for i, p in enumerate(passes):
        for base_cls in type(p).__mro__:
            by_base[base_cls].append(i)
    for i, p in enumerate(passes):
        for cls in p.contract.after:
            for j in by_base.get(cls, ()):
                graph.edge(j, i, Reason(Kind.AFTER, cls.info.name, by=p.name))
        for cls in p.contract.before:
            for j in by_base.get(cls, ()):
                graph.edge(i, j, Reason(Kind.BEFORE, cls.info.name, by=p.name))

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
        graph.edge(u, v, Reason(Kind.ORDERED))

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
                        # the hint reads the contract the run uses (options included)
                        could = fact_providers(registry or {}, f)
                        fix = f"add {' or '.join(could)}" if could else "add a pass providing it"
                        raise UnsatisfiedError(
                            f"{pass_label(passes, c)} requires fact {f.name!r} ({f.meaning}), but "
                            f"{pass_label(passes, inv)} invalidates it and must run first; {fix} "
                            f"after {passes[inv].name}"
                            + (
                                ""
                                if passes[c].contract.is_conversion
                                else f", or drop {passes[c].name}"
                            )
                        )
                else:
                    graph.edge(c, inv, Reason(Kind.READS, f.name, by=passes[inv].name))

    _refuse_cycles(passes, graph)
    order = tuple(nx.lexicographical_topological_sort(graph.g, key=lambda i: i))
    _check_levels(passes, order, start_level, registry)
    _check_runtime_facts(passes, order, initial)
    _check_schedule(passes, order)
    # plan-owned inputs: to-edge keeps ops whole for the partition passes scheduled after it
    bound = list(passes)
    for i, p in zip(order, bind_keep_whole([passes[i] for i in order]), strict=True):
        bound[i] = p
    return Plan(tuple(bound), order, {k: tuple(v) for k, v in graph.reasons.items()})


def _refuse_cycles(passes: Sequence[Pass], graph: _Graph) -> None:
    if nx.is_directed_acyclic_graph(graph.g):
        return
    cycle = nx.find_cycle(graph.g)
    steps = [
        f"{pass_label(passes, u)} -> {pass_label(passes, v)} "
        f"({'; '.join(map(str, graph.reasons[(u, v)]))})"
        for u, v in cycle
    ]
    raise CycleError("the ordering constraints form a cycle: " + ", ".join(steps))


def _level_reason(a: tuple[Level, Level], b: tuple[Level, Level]) -> Reason:
    def show(k: tuple[Level, Level]) -> str:
        return k[0].label if k[0] == k[1] else f"{k[0].label}->{k[1].label}"

    return Reason(Kind.LEVEL, f"{show(a)} before {show(b)}")


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
                f"{pass_label(passes, i)} reads {info.level_in.label} programs, but the program is "
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
                f"{pass_label(passes, i)} requires "
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
            raise ConflictError(f"{pass_label(passes, i)}: {why}")


def refuted_facts(passes: Sequence[Pass], program: Program) -> frozenset[Fact]:
    """The assumed facts the passes name that do not hold of ``program`` (checked on it)."""
    named = {f for p in passes for f in p.contract.requires | p.contract.invalidates}
    return frozenset(f for f in named if f.assumed and f not in program.facts and f.check(program))
