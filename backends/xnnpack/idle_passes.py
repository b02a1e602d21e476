"""XNNPACK's preprocess passes, skipped on a partition they have nothing to do on.

XNNPACK's preprocess runs 17 passes (``XNNPACKPassManager``) on every partition. Most of
them look for one kind of node (a batch norm, a 1-d convolution, a PReLU, a concatenation
of more than five inputs...), change the graph where they find it, then re-trace the whole
partition on fake tensors to refresh its metadata; on a partition without such a node
that re-trace is all they do. A Llama's partitions are linears: at stories size 12 idle
re-traces of each of 43 partitions are ~40% of partitioning (~60% with 8da4w, whose
partitions hold the dynamic quantization ops), and upstream's two pattern passes build
their pattern graphs (six small modules exported to edge, 1.5-2.5 s) to match none.

While pteflow lowers to XNNPACK, each pass below first asks its graph whether it holds
what the pass acts on (read from the pass's own source, ExecuTorch 1.5.1); if not, the
pass returns the graph unchanged instead of re-tracing it. ``ConvertToLinearPass`` and
``ChannelsLastTaggedReshapePass``, which work on every graph (and re-trace it), and the
passes that do not re-trace run as upstream wrote them. The programs are byte for byte
the ones upstream's passes make (``tests/backends/xnnpack/test_idle_passes.py`` lowers
models holding each kind of node both ways). On another ExecuTorch release nothing is
changed. The passes' ``call`` is replaced while the block runs and restored after.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any

from pteflow.ir.replaced import installed_is, replaced

#: the ExecuTorch release whose passes the tests below were read from
CHECKED_RELEASE = "1.5.1"

Graph = Any
HasWork = Callable[[Graph], bool]


def holds(graph: Graph, ops: Any) -> bool:
    """Some node of the fx ``graph`` calls one of ``ops``."""
    return any(n.op == "call_function" and n.target in ops for n in graph.nodes)


def _edge(*names: str) -> set[Any]:
    """Edge ops by ``aten`` name and overload (``"convolution.default"``)."""
    from executorch.exir.dialects._ops import ops as exir_ops

    found = set()
    for name in names:
        op, overload = name.rsplit(".", 1)
        found.add(getattr(getattr(exir_ops.edge.aten, op), overload))
    return found


def _computes_a_constant(graph: Graph) -> bool:
    """Some call reads no graph input, directly or through other calls: what
    ``ConstPropPass`` folds (it treats every placeholder as a non-constant)."""
    constant: set[Any] = set()
    for n in graph.nodes:
        if n.op == "get_attr":
            constant.add(n)
        elif n.op == "call_function" and all(i in constant for i in n.all_input_nodes):
            return True
    return False


def _propagates_custom_meta(graph: Graph) -> bool:
    """A quantize or dequantize node whose input carries ``custom`` metadata."""
    from executorch.backends.xnnpack.utils.quant_utils import is_dequant, is_quant

    return any(
        (is_quant(n) or is_dequant(n))
        and n.args
        and hasattr(n.args[0], "meta")
        and "custom" in n.args[0].meta
        for n in graph.nodes
    )


def work() -> dict[tuple[str, str], HasWork]:
    """(module, pass class) -> whether a partition graph gives that pass anything to do."""
    from executorch.backends.xnnpack._passes.decompose_batch_norm import DecomposeBatchNorm
    from executorch.backends.xnnpack._passes.fuse_activation_pass import FuseActivationPass
    from executorch.exir.passes.dim_order_ops_registry import MemoryFormatOpsMap

    passes = "executorch.backends.xnnpack._passes"
    batch_norms = set(DecomposeBatchNorm.BATCH_NORM_OPS)
    activations = set(FuseActivationPass.FUSEABLE_ACTIVATIONS)

    def any_of(ops: set[Any]) -> HasWork:
        return lambda graph: holds(graph, ops)

    return {
        ("executorch.exir.passes.memory_format_ops_pass", "DimOrderOpsRevertPass"): any_of(
            set(MemoryFormatOpsMap)
        ),
        # every upstream pattern holds its pass's op (a match needs all of them)
        (f"{passes}.convert_to_upsample_bilinear2d", "ConvertToUpsampleBilinear2d"): any_of(
            _edge("upsample_bilinear2d.vec")
        ),
        (f"{passes}.convert_to_sdpa", "ConvertToSDPAPass"): any_of(_edge("_softmax.default")),
        (f"{passes}.propagate_custom_meta_pass", "PropagateCustomMetaPass"): (
            _propagates_custom_meta
        ),
        ("executorch.exir.passes.const_prop_pass", "ConstPropPass"): _computes_a_constant,
        (f"{passes}.fuse_batch_norm", "FuseBatchNormPass"): any_of(batch_norms),
        (f"{passes}.decompose_batch_norm", "DecomposeBatchNorm"): any_of(batch_norms),
        (f"{passes}.fuse_activation_pass", "FuseActivationPass"): any_of(activations),
        (f"{passes}.decompose_cat", "DecomposeConcatenate"): any_of(_edge("cat.default")),
        ("executorch.backends.transforms.remove_getitem_op", "RemoveGetItemPass"): any_of(
            _edge("max_pool2d_with_indices.default", "max.dim")
        ),
        (f"{passes}.conv1d_unsqueeze_pass", "Conv1dUnsqueezePass"): any_of(
            _edge("convolution.default")
        ),
        (f"{passes}.prelu_reshape_pass", "PReLUReshapePass"): any_of(
            _edge("_prelu_kernel.default")
        ),
        (f"{passes}.remove_redundant_copy_pass", "RemoveRedundantCopyPass"): any_of(
            _edge("_to_copy.default")
        ),
    }


def _checked_release() -> bool:
    return installed_is("executorch", CHECKED_RELEASE)


@contextlib.contextmanager
def skipped() -> Iterator[None]:
    """While inside, XNNPACK's preprocess passes leave alone a graph they have nothing to
    do on (see the module docstring)."""
    if not _checked_release():
        yield
        return
    with contextlib.ExitStack() as stack:
        for (module, name), has_work in work().items():
            cls = getattr(importlib.import_module(module), name, None)
            original = getattr(cls, "call", None)
            if callable(original):  # renamed upstream: left as it is
                stack.enter_context(replaced(cls, "call", _unless_idle(original, has_work)))
        yield


def _unless_idle(original: Callable[..., Any], has_work: HasWork) -> Callable[..., Any]:
    from torch.fx.passes.infra.pass_base import PassResult

    def call(self: Any, graph_module: Any) -> Any:
        if has_work(graph_module.graph):
            return original(self, graph_module)
        return PassResult(graph_module, False)

    return call
