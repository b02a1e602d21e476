"""One run's use of the cache: the chain of keys, the resume point, staged entries.

The manager calls, in order: ``resume`` (the longest cached prefix: keys only, then the
last hit is loaded), ``headers`` (the stored records of the skipped passes), ``stage``
after every pass that ran, ``commit`` once the claims so far are checked, ``finish``.
When a pass fails on a program that was restored, the manager calls ``drop_restored``
and runs again from the original input with a session that does not read
(``read=False``): the failure is reported only if it happens without the cache too.

Results are stored by a forked child per result (``forked.py``; on Linux) or by a writer
thread (``writer.py``): ``stage`` hands them over, ``commit`` and ``finish`` publish them.

A pass that changed nothing (``modified=False``) stores an alias to its input's entry
(``alias``; ``alias_with_facts`` when only the facts it provides differ: a restore puts
them on the aliased program). A result whose pass is cheaper to run again than to store
is stored as its key only (``worth.py``): a resume starts before it and runs it again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
import weakref
from collections.abc import Mapping
from typing import Any

from pteflow.ir import Level, Program
from pteflow.ir.freed_memory import return_freed_memory

from ..base import Pass
from . import codec, delegate_texts
from .blobs import MissingBlob
from .forked import ForkedWriter, writer_for
from .input_key import InputKey
from .keys import chain_keys
from .store import LAST_RUN, CorruptEntry, PassCache
from .worth import StoreBudget
from .writer import Job, Writer


def _same(a: Program, b: Program) -> bool:
    """``b`` holds exactly what ``a`` holds (the objects, not copies), facts aside."""
    return (
        a.level == b.level
        and a.artifact is b.artifact
        and _same_values(a.metadata, b.metadata)
        and _same_values(a.example_inputs, b.example_inputs)
        and _same_values(a.dynamic_shapes, b.dynamic_shapes)  # deferred ones: not made
    )


def _same_values(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a is b or (a.keys() == b.keys() and all(a[k] is b[k] for k in a))


class CacheSession:
    """See the module docstring. ``read=False``: store results, restore nothing."""

    def __init__(
        self,
        cache: PassCache,
        ordered: tuple[Pass, ...],
        program: Program,
        *,
        read: bool = True,
    ):
        self.cache = cache
        self.ordered = ordered
        self.read = read
        self.hits = 0
        self.stored = 0
        self.load_s = 0.0
        self.store_s = 0.0
        self.notes: list[str] = []
        self.write_s = 0.0  # the writer thread's time, off the critical path
        self.key_only = 0  # results stored as their key: cheaper to run again than to store
        self._budget = StoreBudget()
        self._restorable: set[str] = set()  # keys whose entry restores a program
        self._staged: list[Job] = []
        self._later: list[tuple[int, Program, Program, bool, dict[str, Any]]] = []  # (stage's)
        self._jobs: dict[str, Job] = {}
        self._measuring: list[tuple[str, Level, int]] = []  # (key, level, ops) in a child
        self._writer: Writer | ForkedWriter | None = None
        self._finalizer: Any = None  # abandons the writer of a run that did not finish
        known = set(program.facts)
        for p in ordered:
            known |= p.contract.provides | p.contract.requires | p.contract.invalidates
        self._facts = codec.fact_table(known)
        self._keys: list[str | None] | None = None
        self._input: InputKey | None = None
        self._marked = False
        try:
            self._input = cache.input_key(program)
        except Exception as e:  # an unhashable input only disables the cache
            self._no_keys(e)

    @property
    def keys(self) -> list[str | None]:
        """The chain key of each pass (None: not cached). A cold run's first key may still
        be in the making (``input_key.py``): this waits for it."""
        if self._keys is None:
            try:
                first = self._input.result() if self._input is not None else None
            except Exception as e:
                self._no_keys(e)
                first = None
            if first is not None:
                self._keys = chain_keys(first, self.ordered, self.notes.append)
            else:
                self._keys = [None] * len(self.ordered)
        return self._keys

    def _no_keys(self, why: Exception) -> None:
        self.notes.append(f"input program not hashable ({why}); nothing cached")
        self._keys = [None] * len(self.ordered)

    @property
    def may_hit(self) -> bool:
        """The cache may hold entries for this run (else nothing is looked up, and the
        first key is taken while the first pass runs)."""
        return self.read and self._input is not None and self._input.seen

    @property
    def cacheable(self) -> int:
        return sum(k is not None for k in self.keys)

    # ---------------------------------------------------------------- reading

    def headers(self, upto: int) -> list[dict[str, Any] | None]:
        """The stored headers (records) of the passes before rank ``upto``."""
        out: list[dict[str, Any] | None] = []
        for key in self.keys[:upto]:
            try:
                out.append(self.cache.read_header(key) if key else None)
            except CorruptEntry:
                out.append(None)
        return out

    def resume(self, program: Program) -> tuple[int, Program]:
        """The first rank to run and the program to run it on (the longest cached prefix)."""
        if not self.may_hit:
            return 0, program
        t0 = time.perf_counter()
        try:
            for rank in range(len(self.keys) - 1, -1, -1):
                key = self.keys[rank]
                if key is None:
                    continue
                restored = self._load(key, program)
                if restored is not None:
                    self.hits = rank + 1
                    self._restorable.add(key)
                    return rank + 1, restored
            return 0, program
        finally:
            self.load_s = time.perf_counter() - t0

    def _load(self, key: str, program: Program, depth: int = 0) -> Program | None:
        try:
            header = self.cache.read_header(key)
        except CorruptEntry as e:
            self.cache.drop(key, str(e))
            return None
        if header is None or depth > len(self.keys):
            return None
        if header.get("alias"):
            return self._load(header["alias"], program, depth + 1)
        if header.get("alias_with_facts"):
            return self._load_with_facts(header["alias_with_facts"], program, depth)
        if not header.get("payload_bytes"):
            return None  # an EAGER entry: a key only
        try:
            header, payload = self.cache.read(key)  # authenticated, or CorruptEntry
        except FileNotFoundError:
            return None  # evicted or cleared meanwhile
        except CorruptEntry as e:
            self.cache.drop(key, str(e))
            return None
        try:
            return codec.decode(payload, self._facts, self.cache.blobs)
        except MissingBlob as e:
            self.cache.drop(key, str(e))
            self.cache.blobs.scrub(header.get("blobs") or {})
            return None
        except Exception as e:  # any decoding failure means: do not use it
            self.cache.drop(key, f"{type(e).__name__}: {e}")
            return None

    def _load_with_facts(
        self, alias: dict[str, Any], program: Program, depth: int
    ) -> Program | None:
        """The aliased entry's program with this entry's facts (an unmodified pass that
        provides facts: its artifact is its input's)."""
        names = alias.get("facts") or ()
        if any(n not in self._facts for n in names):
            return None  # a fact this pipeline does not know: cannot restore faithfully
        restored = self._load(alias["of"], program, depth + 1)
        if restored is None:
            return None
        return restored.evolve(facts=frozenset(self._facts[n] for n in names))

    def drop_restored(self, why: str) -> None:
        """Delete the entries this run was restored from (and the prefix before them)."""
        keys = [k for k in self.keys[: self.hits] if k]
        for key in keys:
            self.cache.remove(key)
        self.cache.log(
            f"pass cache: {why}; dropped the {len(keys)} entries it was restored from and "
            "ran again without the cache"
        )

    # ---------------------------------------------------------------- writing

    def stage(
        self, rank: int, before: Program, after: Program, modified: bool, record: dict[str, Any]
    ) -> None:
        """Hand the output of the pass at ``rank`` to the writer; ``commit`` makes it visible.

        A forked child serializes and writes it while the next passes run
        (``forked.py``); with the thread writer (``writer.py``), its graphs are serialized
        now (a later pass may edit them in place) and its tensors pickled, hashed and
        written by the writer thread.

        An EAGER result (a key, no payload) staged while the first key is still in the
        making (``input_key.py``) waits for the next result that is not, or ``finish``:
        the run does not stop for the weights' digests until it has a program to store.
        """
        if after.level == Level.EAGER and self._input is not None and not self._input.ready():
            self._later.append((rank, before, after, modified, record))
            return
        later, self._later = self._later, []
        for args in [*later, (rank, before, after, modified, record)]:
            self._stage_one(*args)

    def _stage_one(
        self, rank: int, before: Program, after: Program, modified: bool, record: dict[str, Any]
    ) -> None:
        key = self.keys[rank]
        if key is None:
            return
        if self._input is not None and not self._marked:
            self._input.mark()  # a later run on this input looks its entries up
            self._marked = True
        t0 = time.perf_counter()
        try:
            self._stage(rank, key, before, after, modified, record)
        finally:
            self.store_s += time.perf_counter() - t0

    def _stage(
        self,
        rank: int,
        key: str,
        before: Program,
        after: Program,
        modified: bool,
        record: dict[str, Any],
    ) -> None:
        self._budget.ran(record)
        if self._writer is not None:
            self._writer.collect()
            self._measured()
        final = self.cache.path(key)
        if final.exists():
            with contextlib.suppress(OSError):
                os.utime(final)
            self._stored_before(key)
            return
        header: dict[str, Any] = {
            "pass": self.ordered[rank].describe(),
            "level": after.level.name,
            "record": record,
            "created": time.time(),
        }
        value = encode = held = delegates = None
        texts = self.cache.delegate_texts
        previous = self.keys[rank - 1] if rank > 0 else None
        try:
            if not modified and previous and _same(before, after):
                if before.facts == after.facts:
                    header["alias"] = previous
                else:
                    header["alias_with_facts"] = {
                        "of": previous,
                        "facts": sorted(f.name for f in after.facts),
                    }
                if previous in self._restorable:
                    self._restores(key)
            elif after.level != Level.EAGER:
                ops = int(record.get("ops_after") or 0)
                unstorable = codec.why_unstorable(after)
                if unstorable:  # expected (pt2e's observers): a key, no failed attempt
                    header["key_only"] = unstorable
                    self.key_only += 1
                elif self._budget.worth_storing(after.level, ops, self._busy_s()):
                    if self._open_writer().snapshots:  # encoded in a forked child
                        encode = functools.partial(codec.encode, after, texts)
                        held = codec.byte_blobs(after)
                        delegates = delegate_texts.delegates_of(after)
                        self._budget.restorable()  # its rate: once the child reports
                        self._measuring.append((key, after.level, ops))
                    else:
                        t0 = time.perf_counter()
                        value = codec.encode(after, texts)
                        # what serde built is freed by now, in heap-sized pieces that
                        # would stay resident under the later passes' peaks (~15 MB)
                        return_freed_memory()
                        self._budget.stored(after.level, ops, time.perf_counter() - t0)
                    self._restorable.add(key)
                else:
                    header["key_only"] = "cheaper to run again than to store"
                    self.key_only += 1
        except Exception as e:  # a result we cannot store is just not cached
            self.notes.append(f"{self.ordered[rank].name}: result not stored ({e})")
            self.cache.log(
                f"pass cache: the result of {self.ordered[rank].describe()} is not stored "
                f"({type(e).__name__}: {e})"
            )
            return
        what = self.ordered[rank].describe()
        job = Job(key, header, value, what, encode=encode, held=held, delegates=delegates)
        self._open_writer().submit(job)
        self._staged.append(job)
        self._jobs[key] = job

    def _open_writer(self) -> Writer | ForkedWriter:
        if self._writer is None:
            self._writer = writer_for(self.cache)
            self._finalizer = weakref.finalize(self, self._writer.close, abandon=True, wait=0)
        return self._writer

    def _busy_s(self) -> float:
        return self._writer.busy_s() if self._writer is not None else 0.0

    def _measured(self) -> None:
        """Give the budget the serialization times the forked children reported."""
        waiting = []
        for key, level, ops in self._measuring:
            seconds = self._jobs[key].encode_s
            if seconds is None:
                waiting.append((key, level, ops))
            else:
                self._budget.measured(level, ops, seconds)
        self._measuring = waiting

    def _stored_before(self, key: str) -> None:
        """An entry another run stored under ``key``: note whether it restores a program."""
        try:
            header = self.cache.read_header(key) or {}
        except CorruptEntry:
            return
        if header.get("payload_bytes") or header.get("alias") or header.get("alias_with_facts"):
            self._restores(key)

    def _restores(self, key: str) -> None:
        """``key``'s entry restores a program (by alias): a resume can start after it."""
        self._restorable.add(key)
        self._budget.restorable()

    def commit(self) -> None:
        """Make staged entries visible once written: their claims were checked."""
        if self._writer is not None:
            self._writer.commit(self._staged)
        self._staged = []

    def finish(self) -> dict[str, Any]:
        """Commit, wait for the writer, evict over the cap, record this run's hit rate."""
        later, self._later = self._later, []
        for args in later:
            self._stage_one(*args)
        self.commit()
        t0 = time.perf_counter()
        if self._writer is not None:
            self._writer.close()
            self._finalizer.detach()
            self.write_s = self._writer.write_s
            self.stored = self._writer.stored
        self.cache.delegate_texts.clear()  # (the digests are the full-run entry's still)
        self.cache.evict()
        self.store_s += time.perf_counter() - t0
        looked_up = self.cacheable
        stats = {
            "time": time.time(),
            "passes": len(self.ordered),
            "cacheable": looked_up,
            "hits": self.hits,
            "misses": looked_up - self.hits,
            "hit_rate": self.hits / looked_up if looked_up else 0.0,
            "stored": self.stored,
            "key_only": self.key_only,
            "load_s": self.load_s,
            "store_s": self.store_s,
            "write_s": self.write_s,
            "notes": self.notes,
        }
        with contextlib.suppress(OSError):
            from ..emit.emit import write_atomically

            write_atomically(self.cache.directory / LAST_RUN, json.dumps(stats).encode())
        return stats
