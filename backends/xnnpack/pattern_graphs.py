"""XNNPACK's pattern graphs, built only for a partition they could match.

Two of the passes XNNPACK's preprocess runs on every partition look for subgraphs equal
to small pattern graphs: ``ConvertToUpsampleBilinear2d`` and ``ConvertToSDPAPass``
(``executorch/backends/xnnpack/_passes``). The first time either runs in a process it
builds its patterns by exporting and lowering to edge six small modules
(``partition/graphs/bilinear_2d.py``, ``sdpa.py``): 1.5-2.5 s of every export, spent on
partitions (a Llama's are linears) that can match none of them.

A subgraph match needs every op of the pattern in the graph. Each upsample pattern holds
the edge ``aten.upsample_bilinear2d.vec`` and each SDPA pattern ``aten._softmax.default``
(ExecuTorch 1.5.1; ``tests/backends/xnnpack/test_pattern_graphs.py`` builds upstream's
patterns and checks it). So while pteflow lowers to XNNPACK, a pass whose graph lacks that
op runs with an empty pattern list: the graph it returns is the one it would have
returned (nothing matched), and no pattern is built. A graph that has the op runs the
pass as upstream wrote it. On another ExecuTorch version nothing is changed.

The passes' ``call`` and the pattern modules' functions are replaced while the block
runs and restored when it exits; which graph cannot match is per thread, so another
thread lowering meanwhile gets upstream's patterns for its own graphs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: the ExecuTorch release whose patterns the ops below were checked against
CHECKED_RELEASE = "1.5.1"

#: pass (module, class) -> (pattern module, its function the pass calls, what no patterns
#: look like, the edge op every pattern holds: aten namespace, op, overload)
PASSES: dict[tuple[str, str], tuple[str, str, Callable[[], Any], tuple[str, str]]] = {
    ("convert_to_upsample_bilinear2d", "ConvertToUpsampleBilinear2d"): (
        "bilinear_2d",
        "get_graphs_dict",
        dict,
        ("upsample_bilinear2d", "vec"),
    ),
    ("convert_to_sdpa", "ConvertToSDPAPass"): ("sdpa", "get_graphs", list, ("_softmax", "default")),
}


def edge_op(op: tuple[str, str]) -> Any:
    from executorch.exir.dialects._ops import ops as exir_ops

    name, overload = op
    return getattr(getattr(exir_ops.edge.aten, name), overload)


def holds(graph: Any, op: Any) -> bool:
    """Some node of the fx ``graph`` calls ``op``."""
    return any(n.op == "call_function" and n.target == op for n in graph.nodes)


def _checked_release() -> bool:
    try:
        return importlib.metadata.version("executorch") == CHECKED_RELEASE
    except importlib.metadata.PackageNotFoundError:
        return False


@contextlib.contextmanager
def built_only_where_they_can_match() -> Iterator[None]:
    """While inside, XNNPACK's pattern passes skip building patterns no graph can match."""
    if not _checked_release():
        yield
        return
    passes_pkg = "executorch.backends.xnnpack._passes"
    graphs_pkg = "executorch.backends.xnnpack.partition.graphs"
    with contextlib.ExitStack() as stack:
        for (module, cls_name), (graphs, func, empty, op) in PASSES.items():
            cls = getattr(importlib.import_module(f"{passes_pkg}.{module}"), cls_name)
            patterns = importlib.import_module(f"{graphs_pkg}.{graphs}")
            original, built = cls.__dict__.get("call"), getattr(patterns, func, None)
            if original is None or not callable(built):
                continue  # renamed upstream: leave it as it is
            none = threading.local()  # set while this thread's graph cannot match
            setattr(patterns, func, _unless(none, built, empty))
            stack.callback(setattr, patterns, func, built)
            cls.call = _skipping(original, none, edge_op(op))
            stack.callback(setattr, cls, "call", original)
        yield


def _unless(none: threading.local, built: Callable[[], Any], empty: Callable[[], Any]) -> Any:
    def patterns() -> Any:
        return empty() if getattr(none, "now", False) else built()

    return patterns


def _skipping(original: Callable[..., Any], none: threading.local, op: Any) -> Any:
    def call(self: Any, graph_module: Any) -> Any:
        if holds(graph_module.graph, op):
            return original(self, graph_module)
        none.now = True  # nothing can match: the pass gets no patterns, none is built
        try:
            return original(self, graph_module)
        finally:
            none.now = False

    return call
