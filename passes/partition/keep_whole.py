"""Which partitioners to-edge keeps ops whole for: data of the plan, not a look-ahead.

``to_edge_transform_and_lower`` asks every partitioner which ops not to decompose
(``ops_to_not_decompose``) before it converts to edge. pteflow splits that call into
to-edge and one partition pass per partitioner, so to-edge must know the partition passes
that will run after it. The planner tells it: once the order is known, ``bind`` sets the
``keep_whole_for`` option of every ``KeepsWhole`` pass (to-edge) to the specs of the
``PartitionerSource`` passes scheduled after it, in run order. The option is an ordinary
option: ``driver plan``, the summary and the report print it
(``to-edge{keep_whole_for=partition-xnnpack-dq:partition-xnnpack}``), it is part of
to-edge's cache key (a different partitioner misses) and of every pass list pasted back
into ``--passes``. The ops themselves depend on each method's graph, so they are computed
when to-edge runs, from these partitioners.

The edge program records the specs to-edge kept ops whole for (``CONSULTED``); a partition
pass that is not among them is refused, and the one that completes the list runs the
final checks (``lowering.check_lowered``): no look at what comes next.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from pteflow.ir.errors import ConflictError

from ..base import Pass

#: Program.metadata key to-edge sets: the specs of the partition passes it kept ops whole
#: for (its ``keep_whole_for``), in run order.
CONSULTED = "_partitioners_consulted"


@runtime_checkable
class PartitionerSource(Protocol):
    """A partition pass to-edge asks which ops not to decompose."""

    def make_partitioner(self) -> Any: ...


@runtime_checkable
class KeepsWhole(Protocol):
    """A pass with a ``keep_whole_for`` option the planner fills in (to-edge).

    ``None`` (the default): not decided; the planner sets the specs of the partition passes
    scheduled after it. A tuple: decided (a pasted plan line, or a prefix of a planned
    pipeline); the planner checks the partition passes after it agree.
    """

    keep_whole_for: tuple[str, ...] | None


def partition_specs(later: Sequence[Pass]) -> tuple[str, ...]:
    """The specs of the partition passes among ``later`` that to-edge asks, in order."""
    return tuple(p.spec() for p in later if isinstance(p, PartitionerSource))


def bind(ordered: Sequence[Pass]) -> list[Pass]:
    """``ordered`` (run order) with each ``KeepsWhole`` pass's ``keep_whole_for`` decided.

    Raises:
        ConflictError: a pass's ``keep_whole_for`` was given and the partition passes
            scheduled after it are not those (or the first of those, for a prefix run).
        UserError: a given ``keep_whole_for`` names no registered partition pass.
    """
    out = list(ordered)
    for rank, p in enumerate(ordered):
        if not isinstance(p, KeepsWhole) or not isinstance(p, Pass):
            continue
        later = partition_specs(ordered[rank + 1 :])
        given = p.keep_whole_for
        if given is not None:
            partition_passes(given)  # a typo is refused now, not after export
        if given is None:
            if later:
                out[rank] = attrs.evolve(p, keep_whole_for=later)  # type: ignore[call-arg]
        elif later != tuple(given[: len(later)]):
            raise ConflictError(
                f"{p.describe()} keeps ops whole for {', '.join(given) or 'no partitioner'}, "
                f"but the partition passes scheduled after it are {', '.join(later)}; "
                f"drop keep_whole_for from {p.name} (the planner fills it in)"
            )
    return out


@functools.cache
def _registry() -> dict[str, type[Pass]]:
    from ..registry import load_registry

    return load_registry()


def partition_passes(specs: Sequence[str]) -> list[PartitionerSource]:
    """The partition passes ``specs`` name (registered passes, with their options).

    Raises:
        UserError: a spec names no registered pass, or one that is not a partitioner.
    """
    from pteflow.ir.errors import OptionError

    from ..spec import from_spec

    out: list[PartitionerSource] = []
    for text in specs:
        p = from_spec(text, _registry())
        if not isinstance(p, PartitionerSource):
            raise OptionError(
                f"to-edge.keep_whole_for: {text} is not a partition pass to-edge can ask "
                "which ops to keep whole"
            )
        out.append(p)
    return out
