"""QNN: Qualcomm's AI Engine Direct delegate (Snapdragon HTP), through ExecuTorch 1.5.1.

What it contributes:

* an availability probe, ``unavailable_reason()``: ``QNN_SDK_ROOT`` must name an SDK whose
  ``lib/x86_64-linux-clang/libQnnHtp.so`` loads in a child process (no network, no torch
  import, no SDK library loaded here). ExecuTorch itself would download the SDK when
  ``QNN_SDK_ROOT`` is unset; pteflow never lets it (see ``pteflow.backends.qnn.sdk``);
  ``sdk_summary()`` / ``sdk_warning()``: its build id, and one line when it is not the QNN
  version this ExecuTorch was built for (2.37.0 for 1.5.1);
* its quantizer, ``make_quantizer()``: ``QnnQuantizer`` as export_llama builds it for
  ``qnn-16a4w`` (default), ``qnn-8a8w`` and ``qnn-16a16w``, for the pt2e passes;
* compile specs and the partitioner, ``compile_specs()`` / ``partitioner()`` (SoC option,
  default SM8650), and the ``partition-qnn`` pass;
* its source passes (export_llama's ``--qnn -kv`` transforms: simple KV cache, additive
  causal mask, flex SDPA, linear -> 1x1 conv2d; and pteflow's ``split-mha-to-sha``) and its
  edge passes (QNN's to-edge table, ``pteflow.backends.qnn.qnn_edge_passes``);
* ``coverage()``: which ops of an edge program QNN has an op builder for, without the SDK.

Named pipeline: ``qnn_default``. ``--no-delegate`` drops ``partition-qnn`` and every pass
marked ``delegation="qnn"``; what stays writes a portable ``.pte`` of the QNN-prepared,
QNN-quantized graph (it needs ``executorch.kernels.quantized`` registered to convert and to
load: the quantize/dequantize kernels live there).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import sdk
from .quantizer import DEFAULT_QNN_QUANTIZER, QNN_QUANTIZERS, make_qnn_quantizer
from .sdk import DEFAULT_SOC, disable_sdk_download, soc_names
from .sdk import unavailable_reason as _sdk_unavailable_reason

if TYPE_CHECKING:
    from pteflow.backends.qnn.partition_qnn import PartitionQnnPass
    from pteflow.ir import Program
    from pteflow.passes import Pass

BACKEND_ID = "QnnBackend"
DEFAULT_PIPELINE = "qnn_default"

__all__ = [
    "BACKEND_ID",
    "DEFAULT_PIPELINE",
    "DEFAULT_QNN_QUANTIZER",
    "DEFAULT_SOC",
    "QNN_QUANTIZERS",
    "Coverage",
    "NodeCoverage",
    "compile_specs",
    "coverage",
    "disable_sdk_download",
    "edge_passes",
    "make_quantizer",
    "partition_pass",
    "partitioner",
    "runtime_unavailable_reason",
    "sdk_summary",
    "sdk_warning",
    "soc_names",
    "source_passes",
    "unavailable_reason",
]


def unavailable_reason() -> str | None:
    """Why QNN lowering cannot run here (names QNN_SDK_ROOT or libQnnHtp.so), or None."""
    return _sdk_unavailable_reason()


def sdk_summary() -> str | None:
    """``QNN SDK <build id>`` for ``driver list backends``, or None without a usable SDK."""
    build_id = sdk.sdk_build_id()
    return f"QNN SDK {build_id}" if build_id else None


def sdk_warning() -> str | None:
    """One line when the SDK is not the QNN version this ExecuTorch was built for."""
    return sdk.version_warning(sdk.sdk_build_id())


def runtime_unavailable_reason() -> str | None:
    """Why a QNN-delegated ``.pte`` cannot execute in this process's ExecuTorch runtime.

    The runtime must have ``QnnBackend`` registered and the SDK's HTP library loadable
    (on x86_64 that is the HTP simulator).
    """
    from ..runtime import runtime_missing

    return _sdk_unavailable_reason() or runtime_missing(
        BACKEND_ID, "run the .pte on a Snapdragon device with the QNN runtime libraries"
    )


def make_quantizer(name: str = DEFAULT_QNN_QUANTIZER, *, soc: str = DEFAULT_SOC) -> Any:
    """``QnnQuantizer`` for ``qnn-16a4w`` (default), ``qnn-8a8w`` or ``qnn-16a16w``.

    Never downloads the SDK; without one the SDK's op-constraint checks are skipped.
    """
    return make_qnn_quantizer(name, soc=soc)


def partition_pass(*, soc: str = DEFAULT_SOC, use_fp16: bool = False) -> PartitionQnnPass:
    """The ``partition-qnn`` pass (SoC default SM8650; quantized HTP unless ``use_fp16``)."""
    from pteflow.backends.qnn.partition_qnn import PartitionQnnPass

    return PartitionQnnPass(soc=soc, use_fp16=use_fp16)


def compile_specs(*, soc: str = DEFAULT_SOC, use_fp16: bool = False) -> list[Any]:
    """QNN compile specs for the HTP backend on ``soc`` (building them needs no SDK)."""
    return partition_pass(soc=soc, use_fp16=use_fp16).compile_specs()


def partitioner(*, soc: str = DEFAULT_SOC, use_fp16: bool = False) -> Any:
    """export_llama's ``QnnPartitioner`` (partitioning itself needs the SDK)."""
    return partition_pass(soc=soc, use_fp16=use_fp16).qnn_partitioner()


def source_passes(*, sha: bool = False, mask_value: float = -255.0) -> list[Pass]:
    """export_llama's ``--qnn -kv`` source transforms; ``sha`` splits attention per head.

    Without ``sha``: simple KV cache, additive causal mask, flex SDPA, linear -> conv2d.
    With ``sha`` (export_llama's ``--use_qnn_sha``): split-mha-to-sha, the mask, conv2d.
    """
    from pteflow.backends.qnn.qnn_convert_linear_to_conv2d import (
        QnnConvertLinearToConv2dPass,
    )
    from pteflow.backends.qnn.qnn_replace_causal_mask import QnnReplaceCausalMaskPass
    from pteflow.backends.qnn.qnn_replace_kv_cache_with_simple import (
        QnnReplaceKvCacheWithSimplePass,
    )
    from pteflow.backends.qnn.qnn_replace_sdpa_with_flex import QnnReplaceSdpaWithFlexPass
    from pteflow.backends.qnn.split_mha_to_sha import SplitMhaToShaPass

    attention: list[Pass] = (
        [SplitMhaToShaPass()]
        if sha
        else [QnnReplaceKvCacheWithSimplePass(), QnnReplaceSdpaWithFlexPass()]
    )
    return [
        *attention,
        QnnReplaceCausalMaskPass(mask_value=mask_value),
        QnnConvertLinearToConv2dPass(),
    ]


def edge_passes(names: Sequence[str] | None = None) -> list[Pass]:
    """QNN's edge passes by upstream class name; default: the set export_llama runs."""
    from pteflow.backends.qnn import qnn_edge_passes

    return list(qnn_edge_passes.passes(tuple(names or qnn_edge_passes.EXPORT_LLAMA_SET)))


# =========================================================================== coverage

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

    from pteflow.backends.qnn.partition_qnn import SKIP_OPS

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
