"""Let go of the final program before ExecuTorch's runtime loads the ``.pte``.

Loading the written file is the peak of an fp32 XNNPACK run: the runtime maps it and
XNNPACK packs every weight, while the program that was serialized still holds every
delegate payload. ``driver run`` (``RunOptions.keep_program=False``) runs the passes
with emit's check and rename deferred (``passes/emit/deferred.py``), reads what its
post-run steps need from the program (``Kept``), releases the program, and only then
has the runtime load and run the file and renames it into place. A failure there is
emit's failure, reported (and reproduced) as any pass's is, and nothing is written.
"""

from __future__ import annotations

import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs


@attrs.frozen
class Kept:
    """What the run's summary, report and warm store read from its final program."""

    constants: Any  # the constants' names by content hash (``driver inspect``), or None
    prepared: Any  # the warm store's full-run body (``warm.PreparedRun``), or None


def keep(result: Any, pte: Any, cache: Any, warm_keys: Any, pending: Sequence[Any]) -> Kept:
    """Read ``Kept`` from ``result.program`` while it is alive (``pending``: emit's files
    not yet renamed to ``pte``, as ``deferring`` gave them)."""
    from .warm import prepare_full_run

    try:
        if pte is None:
            return Kept(None, None)
        target = Path(pte).resolve()
        written = next((p.tmp for p in pending if Path(p.path).resolve() == target), Path(pte))
        prepared = prepare_full_run(cache, warm_keys, result.program, written)
        return Kept(constant_names(result.program), prepared)
    finally:
        if cache is not None:  # they held the program's payloads and delegates
            cache.forget_held()


def constant_names(program: Any) -> dict[str, Any] | None:
    """The constants' names by content hash, for ``driver inspect`` (the .pte has none)."""
    from pteflow.ir import Level

    if program.level != Level.EXECUTORCH:
        return None
    from .inspect import constant_names as names

    return names(program)


def stand_in(program: Any) -> Any:
    """What is left of a released program: its level and metadata (the arbitration)."""
    return types.SimpleNamespace(level=program.level, metadata=dict(program.metadata))


def deferring(release: bool) -> Any:
    """``deferred_commits()`` when the program is to be released, else an empty list."""
    import contextlib

    from pteflow.passes.emit.deferred import deferred_commits

    return deferred_commits() if release else contextlib.nullcontext([])


def released(result: Any) -> Any:
    """``result`` with a stand-in for its program (hold no other reference to the old one:
    rebind, ``result = released(result)``)."""
    return attrs.evolve(result, program=stand_in(result.program))


def commit(
    result: Any,
    pending: Sequence[Any],
    observers: Sequence[Any],
    memory: Any,
    console: Any,
    say: Any,
) -> Any:
    """``result`` once every pending ``.pte`` loaded, ran and was renamed into place;
    emit's record, memory row and log stage (the runtime's output) include that.

    Raises:
        PassFailedError: (emit) the runtime cannot load or run the file; nothing written.
    """
    import gc

    from pteflow.ir.errors import PassFailedError
    from pteflow.ir.freed_memory import return_freed_memory
    from pteflow.ir.mapped_pages import release_mapped_files
    from pteflow.passes.observers import Observers
    from pteflow.passes.partition.upstream_caches import forget_graphs_upstream_keeps

    forget_graphs_upstream_keeps(deep=True)  # they would keep the payloads alive
    gc.collect()  # the program's graphs are cyclic: their payloads wait for a collection
    return_freed_memory()  # payloads freed in heap-sized pieces stay resident otherwise
    release_mapped_files()  # the checkpoint's pages the post-run readers touched
    ordered = result.plan.ordered_passes()
    records = list(result.records)
    for p in pending:
        rank = next(i for i, r in enumerate(records) if r.position == p.position)
        emit = ordered[rank]
        t0 = time.perf_counter()
        stage = ("pass", rank + 1)  # emit's, as the progress lines opened it
        console.stage(stage, console.labels.get(stage, emit.name))
        try:
            p.commit()
        except Exception as e:
            options = records[rank].options  # as the manager describes the pass
            err = PassFailedError(emit.name, p.position, options, e, (rank + 1, len(ordered)))
            Observers(observers).failed(rank, emit, err)  # the reproducer, as for any pass
            raise err from e
        finally:
            console.end_stage()
        took = time.perf_counter() - t0
        records[rank] = attrs.evolve(records[rank], wall_s=records[rank].wall_s + took)
        memory.after(rank, emit, None, records[rank])  # emit's peak now includes the load
        say(f"        {emit.name}: checked in the runtime after the release ({took:.2f}s)")
    return attrs.evolve(result, records=tuple(records))
