"""Which partitioner claimed each node: recorded by the partition passes as they lower.

``to_edge_transform_and_lower(partitioner=[a, b])`` gives ``a`` first pick and ``b`` what
``a`` left; upstream keeps no record of who took what. Each partition pass that lowers
through ``lowering.lower`` calls ``record`` with the program before and after its
``to_backend``: the nodes inside the delegates it created are its claims, and the nodes
still outside every delegate are (so far) left to portable kernels. The record lives in
``Program.metadata[ARBITRATION]`` (a ``_`` key: never a constant method of the ``.pte``);
``arbitration(program)`` reads it back for the run's JSON report.

Nodes are the edge graph's ``call_function`` nodes by name (as the delegate's original
program keeps them), ``getitem`` projections and the delegate calls themselves excluded.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs

from pteflow.ir import Program, views
from pteflow.ir.facts import op_name

#: Program.metadata key: the Arbitration so far.
ARBITRATION = "arbitration"
PORTABLE = "portable"


@attrs.frozen
class Claim:
    method: str
    node: str
    op: str
    claimed_by: str | None  # the partition pass's name; None: left to portable kernels
    backend: str | None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Arbitration:
    """Per node, which partition pass claimed it; ``order`` is the order they ran in."""

    order: tuple[str, ...]
    claims: tuple[Claim, ...]

    def counts(self) -> dict[str, int]:
        """Nodes per partition pass (every pass that ran, even with 0) and ``portable``."""
        c = Counter(cl.claimed_by or PORTABLE for cl in self.claims)
        return {**{p: c.get(p, 0) for p in self.order}, PORTABLE: c.get(PORTABLE, 0)}

    def portable_ops(self) -> dict[str, int]:
        """Op -> how many of its nodes no partitioner claimed."""
        return dict(Counter(cl.op for cl in self.claims if cl.claimed_by is None))

    def claimant(self, method: str, node: str) -> str | None:
        for cl in self.claims:
            if cl.method == method and cl.node == node:
                return cl.claimed_by
        raise KeyError(f"{method}/{node}")

    def to_json(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "counts": self.counts(),
            "portable_ops": self.portable_ops(),
            "nodes": [c.to_json() for c in self.claims],
        }

    def render(self) -> str:
        parts = [f"{p} {n}" for p, n in self.counts().items()]
        line = "arbitration (nodes claimed, in partitioner order): " + ", ".join(parts)
        left = sorted(self.portable_ops().items(), key=lambda kv: (-kv[1], kv[0]))
        if left:
            line += "\n  left to portable kernels: " + ", ".join(f"{op} x{n}" for op, n in left)
        return line


def _is_counted(node: Any) -> bool:
    if node.op != "call_function" or node.target is operator.getitem:
        return False
    return not views.is_delegate_call(node)


def _delegates(program: Program) -> Iterator[tuple[str, str, Any]]:
    """(method, submodule name, lowered module) of every delegate call."""
    for method, gm in program.graph_modules().items():
        for name, lowered in views.named_delegates(gm):
            yield method, name, lowered


def _outside(program: Program) -> list[tuple[str, str, str]]:
    return [
        (method, node.name, op_name(node.target))
        for method, gm in program.graph_modules().items()
        for node in gm.graph.nodes
        if _is_counted(node)
    ]


def arbitration(program: Program) -> Arbitration | None:
    """The record the partition passes left, or None when none ran through ``record``."""
    return program.metadata.get(ARBITRATION)


def record(pass_name: str, before: Program, after: Program) -> dict[str, Any]:
    """``after.metadata`` extended with what ``pass_name`` claimed between the two programs."""
    seen = {(m, name) for m, name, _ in _delegates(before)}
    taken = []
    for method, name, lowered in _delegates(after):
        if (method, name) in seen:
            continue
        inner = getattr(lowered, "original_module", None)
        if inner is None:
            continue
        taken += [
            Claim(method, n.name, op_name(n.target), pass_name, lowered.backend_id)
            for n in inner.graph_module.graph.nodes
            if _is_counted(n)
        ]
    old = arbitration(before)
    earlier = tuple(c for c in old.claims if c.claimed_by) if old else ()
    left = tuple(Claim(m, n, op, None, None) for m, n, op in _outside(after))
    order = (*(old.order if old else ()), pass_name)
    return {**after.metadata, ARBITRATION: Arbitration(order, (*earlier, *taken, *left))}
