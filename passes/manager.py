"""The PassManager: run a planned pipeline, check between passes, record, cache.

The order comes from ``planning.plan`` (see that module for every kind of ordering
edge); this module runs it: level invariants and claimed facts between passes,
observers, the pass-result cache, and a record per pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from pteflow.ir import Fact, Level, Program, interrupts, invariants, views
from pteflow.ir.errors import (
    FactError,
    InvariantError,
    PassFailedError,
    PipelineError,
    UnavailableError,
)
from pteflow.ir.hashing import structural_hash

from .base import Pass, PassContext
from .observers import Observers, PassObserver, PassRecord
from .planning import Plan, pass_label, plan, refuted_facts
from .policy import delegation_of

__all__ = ["VERIFY_MODES", "PassManager", "PassObserver", "PassRecord", "Plan", "RunResult", "plan"]

if TYPE_CHECKING:
    from .cache import CacheSession, PassCache

Verify = Literal["each", "boundaries", "off"]
VERIFY_MODES: tuple[Verify, ...] = ("each", "boundaries", "off")

# --------------------------------------------------------------------------- running


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
                    f"{pass_label(self.passes, i)} cannot run on this machine: {reason}"
                )

    def run(
        self,
        program: Program,
        *,
        observers: Sequence[PassObserver] = (),
        cache: PassCache | None = None,
    ) -> RunResult:
        """Plan, check availability, then run every pass in order.

        ``observers``: the ``PassObserver`` hooks (``passes/observers.py``): progress,
        dumps, numerics, reproducers; they also hear every ``ctx.log`` message.

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
        hub = Observers(observers)
        try:
            return self._run(program, hub, cache, read_cache=True)
        except _FailedOnRestored as retry:
            hub.restarted(retry.rank, retry.pass_)
            return self._run(program, hub, cache, read_cache=False)

    def _run(
        self,
        program: Program,
        hub: Observers,
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
        passes = the_plan.passes  # with the options the plan owns (to-edge's keep_whole_for)
        records = []
        pending: dict[Fact, str] = {}  # claims not yet checked -> the pass that made them
        session, first = None, 0
        ops = None  # node count of ``program``: a pass's count after is the next one's before
        if cache is not None:
            ordered = [passes[i] for i in order]
            session = cache.session(ordered, program, read=read_cache)
            ops_in = views.node_count(program)
            first, program = session.resume(program)
            if first:
                ops = views.node_count(program)
                records.extend(
                    self._cached_records(session, passes, order, first, hub, ops_in, ops)
                )
        restored = first > 0  # a failure from here on is retried without the cache
        for rank, pos in enumerate(order):
            if rank < first:
                continue
            p = passes[pos]
            hub.started(rank, p)
            if self.verify == "boundaries" and p.contract.is_conversion and pending:
                # check claims on the level they were made at: a conversion may erase
                # the evidence (constant propagation folds what a checker looks for)
                self._check_claims(program, pending)
                pending = {}
            said: list[str] = []
            ctx = PassContext(position=pos, log=_logger(hub, rank, p, said))
            hub.before(rank, p, program)
            ops_before = views.node_count(program) if ops is None else ops
            delegates = delegation_of(p) is not None
            delegated_before = views.delegated_node_count(program) if delegates else {}
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
                    interrupts.check()  # a Ctrl-C that upstream code turned into an error
                    step = (rank + 1, len(order))
                    raise PassFailedError(p.name, pos, _describe_options(p), e, step) from e
                interrupts.check()  # one it swallowed: the result is not to be trusted
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
                    raise _FailedOnRestored(rank, p) from e
                hub.failed(rank, p, e)
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
                    if delegates
                    else {},
                    log=tuple(said),
                )
            )
            hub.after(rank, p, new, records[-1])
            hub.finished(rank, p, records[-1])
            if session is not None:
                session.stage(rank, program, new, result.modified, records[-1].to_json())
                if not pending:  # every claim so far is checked: staged results are sound
                    session.commit()
            program = new
        interrupts.check()
        stats = session.finish() if session is not None else None
        return RunResult(program, tuple(records), the_plan, schedule_s, stats)

    def _cached_records(
        self,
        session: CacheSession,
        passes: Sequence[Pass],
        order: Sequence[int],
        first: int,
        hub: PassObserver,
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
            p = passes[pos]
            hub.started(rank, p)
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
                    log=tuple(stored.get("log", ())),
                )
            )
            ops = out[-1].ops_after
            hub.finished(rank, p, out[-1])
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

    def __init__(self, rank: int, pass_: Pass):
        super().__init__(rank, pass_)
        self.rank, self.pass_ = rank, pass_


def _logger(hub: PassObserver, rank: int, p: Pass, said: list[str]) -> Callable[[str], None]:
    """``ctx.log`` of a running pass: kept for its record, told to the observers."""

    def log(message: str) -> None:
        said.append(str(message))
        hub.log(rank, p, str(message))

    return log


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
