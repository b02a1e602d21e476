"""The graph's Python code regenerated once per lowering, not once per partition.

Upstream's ``to_backend`` cuts each partition out with ``create_submodule_from_nodes``
(``executorch/exir/lowered_backend_module.py``), which re-sorts the whole remaining graph
(``torch.fx``'s ``legalize_graph``: a copy of every node into a new graph) and, by
assigning that graph to the module, regenerates the module's Python code. Nothing runs
that code while partitions are being cut (the program ``to_backend`` returns is built from
the graph, which makes its own module), so regenerating it for every partition is work
thrown away: at SmolLM2-135M's shapes, 211 partitions of a ~10k-node graph, ~10 s of ~38 s.

While the block runs, ``legalize_graph`` as ``create_submodule_from_nodes`` calls it sorts
the graph exactly as upstream does (its own function, the same nodes, names and order),
with the module's ``recompile`` deferred; every module it sorted is recompiled once when
the block exits, however it exits, so no module is left with stale code.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

from pteflow.ir.replaced import replaced


@contextlib.contextmanager
def recompiled_once() -> Iterator[None]:
    """While inside, partitioning re-sorts graphs without regenerating their code each
    time; each module re-sorted is recompiled on exit (see the module docstring)."""
    from executorch.exir import lowered_backend_module as lbm

    upstream = vars(lbm).get("legalize_graph")
    if not callable(upstream):  # renamed upstream: left as it is
        yield
        return
    stale: weakref.WeakSet[Any] = weakref.WeakSet()

    def legalize_graph(gm: Any) -> Any:
        stale.add(gm)
        gm.recompile = _later  # shadows the method while upstream assigns the graph
        try:
            return upstream(gm)
        finally:
            del gm.recompile

    try:
        with replaced(lbm, "legalize_graph", legalize_graph):
            yield
    finally:
        for gm in list(stale):
            gm.recompile()


def _later() -> None:
    """``recompile`` while a graph is being re-sorted: done once, at the block's end."""
