"""QNN op coverage of an edge program without the SDK (``driver check-coverage``)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import attrs

from .sdk import disable_sdk_download

if TYPE_CHECKING:
    from pteflow.ir import Program

#: Coverage statuses, in the order QnnPartitioner's op-support check decides them.
UNSUPPORTED = "unsupported"  # QNN refuses the op (common_defs.not_supported_operator)
NOT_IMPLEMENTED = "not-implemented"  # supportable, not implemented yet (to_be_implemented)
FALLBACK = "fallback"  # a pass marked the node to stay on the CPU
PASS_THROUGH = "pass-through"  # taken without a builder (getitem, QNN custom ops, bypass)
SKIPPED = "skipped"  # export_llama keeps it on the CPU (llama.fallback)
NO_BUILDER = "no-builder"  # QNN has no op builder for it
BUILDER = "builder"  # QNN has an op builder; the SDK decides at partitioning
GAPS = (UNSUPPORTED, NOT_IMPLEMENTED, NO_BUILDER)


@attrs.frozen
class NodeCoverage:
    method: str
    node: str
    op: str
    status: str

    @property
    def gap(self) -> bool:
        return self.status in GAPS


@attrs.frozen
class Coverage:
    """Per-node QNN op-builder coverage of an edge program."""

    nodes: tuple[NodeCoverage, ...]

    @property
    def gaps(self) -> list[NodeCoverage]:
        return [n for n in self.nodes if n.gap]

    def by_op(self) -> dict[tuple[str, str], int]:
        """(op, status) -> number of nodes."""
        return dict(Counter((n.op, n.status) for n in self.nodes))

    def render(self) -> str:
        """A table: op, nodes, status; gaps first, then a summary line."""
        rows = sorted(self.by_op().items(), key=lambda kv: (kv[0][1] not in GAPS, kv[0]))
        width = max((len(op) for (op, _), _ in rows), default=2)
        lines = [f"{'op':<{width}}  nodes  status"]
        lines += [f"{op:<{width}}  {n:>5}  {status}" for (op, status), n in rows]
        gaps = self.gaps
        lines.append(
            f"{len(self.nodes)} op nodes; {len(gaps)} without QNN support"
            + (f" ({', '.join(sorted({g.op for g in gaps}))})" if gaps else "")
            + "; whether HTP accepts each op with a builder is decided by the SDK at partitioning"
        )
        return "\n".join(lines)


def coverage(program: Program) -> Coverage:
    """Which call_function nodes of an EDGE program QNN has an op builder for; no SDK needed.

    Mirrors ``QnnOperatorSupport.is_node_supported`` (``backends/qualcomm/partition``) up to
    the point where it asks the SDK (``QnnManager.IsNodeSupportedByBackend``): the op lists
    of ``common_defs``, the fallback and bypass marks QNN's edge passes leave in node
    metadata, export_llama's skipped ``llama.fallback`` op, and the op-builder registry
    (``get_node_visitors``). Run it on the program QNN's edge passes produced: the
    partitioner sees that graph.
    """
    from pteflow.ir import Level
    from pteflow.ir.errors import PipelineError
    from pteflow.ir.facts import op_name

    if program.level != Level.EDGE:
        raise PipelineError(
            f"QNN coverage reads an EDGE program (after QNN's edge passes), got a "
            f"{program.level.label} program"
        )
    disable_sdk_download()
    from executorch.backends.qualcomm.builders.node_visitor_manager import get_node_visitors
    from executorch.backends.qualcomm.builders.qnn_constants import OpContextLoader
    from executorch.backends.qualcomm.partition.common_defs import (
        allow_list_operator,
        not_supported_operator,
        to_be_implemented_operator,
    )
    from executorch.backends.qualcomm.utils.constants import (
        QCOM_BYPASS_NODE,
        QCOM_FALLBACK_NODE,
    )

    from .partition_qnn import SKIP_OPS

    out = []
    for method, ep in program.exported_programs().items():
        builders = get_node_visitors(ep)
        for node in ep.graph_module.graph.nodes:
            if node.op != "call_function":
                continue
            target = node.target
            name = getattr(target, "__name__", str(target))
            if target in not_supported_operator:
                status = UNSUPPORTED
            elif target in to_be_implemented_operator:
                status = NOT_IMPLEMENTED
            elif node.meta.get(QCOM_FALLBACK_NODE, False):
                status = FALLBACK
            elif (
                target in allow_list_operator
                or getattr(target, "namespace", None) == OpContextLoader.namespace
                or node.meta.get(QCOM_BYPASS_NODE, False)
            ):
                status = PASS_THROUGH
            elif name in SKIP_OPS:
                status = SKIPPED
            elif name in builders:
                status = BUILDER
            else:
                status = NO_BUILDER
            out.append(NodeCoverage(method, node.name, op_name(target), status))
    return Coverage(tuple(out))
