"""QNN's to-edge transform passes, one pteflow pass each, ordered by QNN's own dependency table.

ExecuTorch's QNN flow (``backends/qualcomm/_passes/qnn_pass_manager.py``) keeps its edge
passes in a list (``get_default_pass_activations``: which run by default) and their order
in a table (``get_passes_dependency_for_capture_program``: for each pass, the passes that
must run before it), solved with ``this_before_that_pass_constraint``; the HTP pass manager
adds ``DecomposeReciprocal``. ``transform_for_to_edge_pipeline`` then runs them on the
edge program, after ``to_edge`` and before partitioning (export_llama does exactly that;
inside ``to_edge_transform_and_lower`` they fail in ``ConvertBmmToMatmul``).

Here every pass of that list is a pteflow pass (``qnn-<name>``), generated from ``SPECS``
below: each row names the upstream class, and its ``after`` column is QNN's table row for
it, so ``driver plan`` orders them and says which QNN dependency put each where.
``ResolveDebugHandle`` runs after every other QNN pass (upstream asserts it is last), and
every QNN pass runs before ``partition-qnn``. Which passes run is the pipeline's choice, as
upstream's activation flags are: ``qnn_default`` lists export_llama's set (the default
activations plus ``ConvertBmmToMatmul`` and ``TagQuantIO``).

Each pass is a ``GraphPass`` (``pteflow.passes.graph_pass``): it calls the upstream class on
every method's graph in place, as upstream does, on the copy the first graph pass of a run
makes (the program a run starts from is left as it was); the base then lifts new constants
and refreshes the signature and decides ``modified`` by comparing graphs, because the
upstream passes report ``modified=True`` whether or not they changed anything.

All of them require ``edge.ir-relaxed``: upstream only runs them on edge programs built
with ``_check_ir_validity=False`` (``qnn_edge_config()``; export_llama's edge config), and
several emit ops outside the core ATen set (``aten.matmul``, ``aten.rms_norm``).

``delegation="qnn"`` marks the passes ``--no-delegate`` drops: those whose result only QNN
can read or run. They are (1) annotations for QNN's op builders (node metadata only),
(2) ``FoldQDQ``, which moves the quantize/dequantize ops into node metadata (the graph
alone then computes garbage: it is QNN's interpretation that makes it quantized),
(3) passes that emit ops ExecuTorch's portable kernels lack (``aten.matmul``,
``aten.rms_norm``), and (4) every pass QNN's table orders after one of those, which
upstream never runs without it. The rest (decompositions, ``RemoveRedundancy``,
``I64toI32``, ...) keep the graph's meaning on any runtime and stay, so a ``--no-delegate``
``.pte`` runs the graph QNN would receive, with its quantize/dequantize ops, on portable
kernels.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable
from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, facts
from pteflow.passes.base import PassInfo
from pteflow.passes.graph_pass import GraphPass
from pteflow.passes.partition.lowering import is_bool

from .partition_qnn import PartitionQnnPass

UPSTREAM_MODULE = "executorch.backends.qualcomm._passes"

# Why a pass is delegation-only (the --no-delegate rule, see the module docstring).
ANNOTATES = "annotates node metadata only QNN's op builders read"
FOLDS = "moves quantize/dequantize into node metadata: only QNN runs the result as quantized"
NO_KERNEL = "emits {op}, which ExecuTorch's portable kernels lack"
AFTER_QNN_ONLY = "QNN's table orders it after a QNN-only pass, without which upstream never runs it"


@attrs.frozen
class Spec:
    """One row of the table: an upstream pass as a pteflow pass."""

    upstream: str  # class name in executorch.backends.qualcomm._passes
    name: str  # pteflow pass name
    doc: str  # imperative one-line doc
    after: tuple[str, ...] = ()  # QNN's dependency table: these run before this one
    qnn_only: str | None = None  # why --no-delegate drops it (None: it stays)
    options: tuple[str, ...] = ()  # upstream bool keyword arguments exposed as options


SPECS: tuple[Spec, ...] = (
    # --- graph cleanups and decompositions (kept by --no-delegate) ---------------------------
    Spec("RemoveRedundancy", "qnn-remove-redundancy",
         "Remove redundant ops (no-op copies, clones, casts) QNN would otherwise lower."),
    Spec("Remove0DTensor", "qnn-remove-0d-tensor",
         "Remove ops whose output is a 0-d tensor where that keeps the meaning (QNN has no 0-d)."),
    Spec("DecomposeMinMaxDim", "qnn-decompose-min-max-dim",
         "Split min/max.dim into min/max plus argmin/argmax (QNN ops have one output)."),
    Spec("DecomposeAcos", "qnn-decompose-acos", "Rewrite acos(x) as pi/2 - asin(x).",
         after=("RemoveRedundancy",)),
    Spec("DecomposeAddmm", "qnn-decompose-addmm", "Rewrite addmm as mm plus add.",
         after=("RemoveRedundancy",)),
    Spec("DecomposeAny", "qnn-decompose-any", "Rewrite any() with ops QNN has.",
         after=("RemoveRedundancy",)),
    Spec("DecomposeAtan2", "qnn-decompose-atan2",
         "Rewrite atan2 piecewise with atan and where.", after=("RemoveRedundancy",)),
    Spec("DecomposePDist", "qnn-decompose-pdist",
         "Rewrite pdist with elementwise ops and a reduction.", after=("RemoveRedundancy",)),
    Spec("DecomposeDiagonal", "qnn-decompose-diagonal",
         "Rewrite diagonal as permute, view, arange and index_select.",
         after=("RemoveRedundancy",)),
    Spec("DecomposeDivMode", "qnn-decompose-div-mode",
         "Rewrite div with a rounding mode as div plus trunc or floor.",
         after=("RemoveRedundancy",)),
    Spec("DecomposeHyperbolicVariants", "qnn-decompose-hyperbolic-variants",
         "Rewrite sinh, cosh, asinh, acosh, atanh with exp, log and sqrt.",
         after=("RemoveRedundancy",)),
    Spec("DecomposeLogVariants", "qnn-decompose-log-variants",
         "Rewrite log10, log2 and log1p with log.", after=("RemoveRedundancy",)),
    Spec("DecomposeMaxPool3d", "qnn-decompose-max-pool3d",
         "Rewrite max_pool3d with 2-d pooling QNN has.", after=("RemoveRedundancy",)),
    Spec("DecomposePad", "qnn-decompose-pad",
         "Turn reflect/replicate pad into the specific pad ops QNN lowers.",
         after=("RemoveRedundancy",)),
    Spec("DecomposeRemainder", "qnn-decompose-remainder",
         "Rewrite remainder(x, y) as x - floor(x / y) * y.", after=("RemoveRedundancy",)),
    Spec("DecomposeTan", "qnn-decompose-tan", "Rewrite tan(x) as sin(x) / cos(x).",
         after=("RemoveRedundancy",)),
    Spec("DecomposeTrunc", "qnn-decompose-trunc",
         "Rewrite trunc(x) as sign(x) * floor(abs(x)).", after=("RemoveRedundancy",)),
    Spec("DecomposeReciprocal", "qnn-decompose-reciprocal",
         "Rewrite reciprocal as a division (QNN HTP).", after=("RemoveRedundancy",)),
    Spec("RecomposePixelUnshuffle", "qnn-recompose-pixel-unshuffle",
         "Fold the reshape/permute form of pixel_unshuffle back into one op.",
         after=("RemoveRedundancy",)),
    Spec("I64toI32", "qnn-i64-to-i32",
         "Cast int64 tensors and constants to int32 (QNN has no int64).",
         after=("LiftConstantScalarOperands", "RemoveRedundancy")),
    # --- emit ops only QNN runs --------------------------------------------------------------
    Spec("RecomposeRmsNorm", "qnn-recompose-rms-norm",
         "Fold the decomposed RMSNorm back into one rms_norm op.",
         after=("RemoveRedundancy",), qnn_only=NO_KERNEL.format(op="aten.rms_norm")),
    Spec("ConvertBmmToMatmul", "qnn-convert-bmm-to-matmul",
         "Rewrite bmm as matmul (one op in QNN) and carry its quantization tag.",
         after=("RecomposePixelUnshuffle",), qnn_only=NO_KERNEL.format(op="aten.matmul")),
    # --- annotations and folding for QNN's op builders ---------------------------------------
    Spec("AnnotateAvgPool1D", "qnn-annotate-avg-pool1d",
         "Annotate the pooling that avg_pool1d decomposes to with its quantization.",
         after=("RemoveRedundancy",), qnn_only=ANNOTATES),
    Spec("AnnotateStack", "qnn-annotate-stack",
         "Annotate stack nodes with their quantization attributes.",
         after=("RemoveRedundancy",), qnn_only=ANNOTATES),
    Spec("AnnotateUnbind", "qnn-annotate-unbind",
         "Annotate unbind nodes with their quantization attributes.",
         after=("RemoveRedundancy",), qnn_only=ANNOTATES),
    Spec("AnnotateQuantAttrs", "qnn-annotate-quant-attrs",
         "Annotate every node with the quantization of its quantize/dequantize neighbours.",
         after=("ConvertBmmToMatmul", "RecomposePixelUnshuffle", "RemoveRedundancy"),
         qnn_only=ANNOTATES, options=("skip_advanced_requant",)),
    Spec("FoldQDQ", "qnn-fold-qdq",
         "Erase the quantize/dequantize ops; their parameters stay in node metadata.",
         after=("AnnotateQuantAttrs", "AnnotateStack", "AnnotateUnbind"), qnn_only=FOLDS,
         options=("force_fold",)),
    # --- after FoldQDQ: graph forms only QNN reads -------------------------------------------
    Spec("CanonicalizeConv", "qnn-canonicalize-conv",
         "Rewrite conv1d as conv2d and dilate transposed-conv kernels for QNN.",
         after=("FoldQDQ",), qnn_only=AFTER_QNN_ONLY),
    Spec("ConvertLinearToConv2d", "qnn-convert-linear-to-conv2d-at-edge",
         "Rewrite linear as 1x1 conv2d on the edge graph (off in export_llama's QNN flow).",
         after=("FoldQDQ",), qnn_only=AFTER_QNN_ONLY),
    Spec("DecomposeColIm", "qnn-decompose-col-im",
         "Rewrite im2col/col2im with pixel_unshuffle/pixel_shuffle and views.",
         after=("FoldQDQ",), qnn_only=AFTER_QNN_ONLY),
    Spec("ExpandBroadcastTensorShape", "qnn-expand-broadcast-tensor-shape",
         "Give broadcast operands the same rank, for QNN's layout transform.",
         after=("FoldQDQ",), qnn_only=AFTER_QNN_ONLY),
    Spec("FixedLinearKeepDim", "qnn-fixed-linear-keep-dim",
         "Wrap linear in reshapes: QNN's linear has no keep-dims.",
         after=("FoldQDQ",), qnn_only=AFTER_QNN_ONLY),
    Spec("RecomposePadMaxPool2d", "qnn-recompose-pad-max-pool2d",
         "Make max_pool2d padding explicit (QNN pads with 0, PyTorch with -inf).",
         after=("DecomposeMaxPool3d", "FoldQDQ"), qnn_only=AFTER_QNN_ONLY),
    Spec("LayoutTransform", "qnn-layout-transform",
         "Mark channel-last layouts and insert the permutes QNN needs.",
         after=("AnnotateQuantAttrs", "ExpandBroadcastTensorShape", "FixedLinearKeepDim"),
         qnn_only=AFTER_QNN_ONLY, options=("insert_permute",)),
    Spec("AnnotateGetAttr", "qnn-annotate-get-attr",
         "Annotate constants created by earlier QNN passes with their quantization.",
         after=("CanonicalizeConv", "ConvertLinearToConv2d", "I64toI32", "LayoutTransform"),
         qnn_only=AFTER_QNN_ONLY),
    Spec("InsertCastForFpActQuantizedWeight", "qnn-insert-cast-for-fp-act-quantized-weight",
         "Insert fp32/fp16 casts around conv/linear with quantized weights and float inputs.",
         after=("FoldQDQ", "LayoutTransform"), qnn_only=AFTER_QNN_ONLY),
    Spec("TagQuantIO", "qnn-tag-quant-io",
         "Tag the KV-cache inputs and outputs QNN keeps quantized (no Q/DQ at the boundary).",
         after=("LayoutTransform",), qnn_only=AFTER_QNN_ONLY),
    Spec("ResolveDebugHandle", "qnn-resolve-debug-handle",
         "Renumber debug handles after QNN's rewrites (runs after every other QNN pass).",
         after=("TagQuantIO",), qnn_only=AFTER_QNN_ONLY),
)  # fmt: skip

#: The upstream pass that must be the last QNN edge pass (upstream asserts it).
LAST = "ResolveDebugHandle"

#: What export_llama's QNN flow runs: the HTP default activations plus its own additions.
EXPORT_LLAMA_SET: tuple[str, ...] = tuple(
    s.upstream for s in SPECS if s.upstream != "ConvertLinearToConv2d"
)


@attrs.frozen
class QnnEdgePass(GraphPass):
    """Base of the generated QNN edge passes (not itself a pass: it has no ``info``)."""

    upstream: ClassVar[str]

    def rewrite(self, method: str, ep: Any) -> None:
        import importlib

        cls = getattr(importlib.import_module(UPSTREAM_MODULE), self.upstream)
        cls(**self.upstream_kwargs(cls, ep))(ep.graph_module)

    def upstream_kwargs(self, cls: type, ep: Any) -> dict[str, Any]:
        """The upstream constructor's arguments: its defaults, the program, this pass's options.

        As ``get_to_edge_transform_passes`` fills them: ``edge_program`` is the method's
        program; everything else keeps its default unless an option of this pass names it.
        ``TagQuantIO`` gets export_llama's ``get_custom_quant_ios_dtype`` for the program's
        KV-cache shape (read from its mutable buffers).
        """
        import inspect

        kwargs: dict[str, Any] = {}
        for name, param in inspect.signature(cls).parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if name == "edge_program":
                kwargs[name] = ep
            elif name == "get_quant_io_dtype_fn":
                kwargs[name] = kv_cache_io_dtype_fn(ep)
            elif name in attrs.fields_dict(type(self)):
                kwargs[name] = getattr(self, name)
            elif param.default is not param.empty:
                kwargs[name] = param.default
            else:
                kwargs[name] = None
        return kwargs


def kv_cache_io_dtype_fn(ep: Any) -> Callable[[Any], Any]:
    """export_llama's ``partial(get_custom_quant_ios_dtype, cache_shape)``, shape from ``ep``.

    export_llama reads the cache shape from the eager model's first attention; the shapes of
    the program's mutated buffers are the same shapes, and need no eager model.
    """
    import torch
    from executorch.backends.qualcomm.quantizer.custom_annotation import (
        get_custom_quant_ios_dtype,
    )

    sig = ep.graph_signature
    mutated = set(sig.buffers_to_mutate.values())
    shapes: list[Any] = []
    for node in ep.graph_module.graph.find_nodes(op="placeholder"):
        if sig.inputs_to_buffers.get(node.name) in mutated and "val" in node.meta:
            shape = torch.Size(node.meta["val"].shape)
            if shape not in shapes:
                shapes.append(shape)

    def dtype_of(node: Any) -> Any:
        for shape in shapes or [None]:
            dtype = get_custom_quant_ios_dtype(shape, node)
            if dtype:
                return dtype
        return None

    return dtype_of


def _class_name(upstream: str) -> str:
    return f"Qnn{upstream}Pass"


def _docstring(spec: Spec) -> str:
    after = ", ".join(f"qnn-{_kebab_of(a)}" for a in spec.after if a in _BY_UPSTREAM)
    lines = [
        spec.doc,
        "",
        f"Wraps ExecuTorch's ``{spec.upstream}`` ({UPSTREAM_MODULE}) on every method, in place.",
        "Requires: edge.ir-relaxed (upstream runs it only on relaxed edge programs).",
        f"Runs after: {after or 'no other QNN pass'} (QNN's dependency table); before "
        "partition-qnn.",
    ]
    if spec.upstream == LAST:
        lines.append("Runs after every other QNN edge pass: upstream asserts it is the last.")
    lines.append(
        f"Dropped by --no-delegate: {spec.qnn_only}."
        if spec.qnn_only
        else "Kept by --no-delegate: the result means the same on any runtime."
    )
    return "\n".join(lines)


_BY_UPSTREAM: dict[str, Spec] = {s.upstream: s for s in SPECS}


def _kebab_of(upstream: str) -> str:
    return _BY_UPSTREAM[upstream].name.removeprefix("qnn-")


def _build() -> dict[str, type[QnnEdgePass]]:
    """One attrs pass class per row of ``SPECS``, in dependency order."""
    deps = {s.upstream: [a for a in s.after if a in _BY_UPSTREAM] for s in SPECS}
    deps[LAST] = [u for u in _BY_UPSTREAM if u != LAST]  # after every other QNN pass
    built: dict[str, type[QnnEdgePass]] = {}
    for upstream in graphlib.TopologicalSorter(deps).static_order():
        spec = _BY_UPSTREAM[upstream]
        after = [built[a] for a in deps[upstream]]
        fields = {o: attrs.field(default=False, validator=is_bool) for o in spec.options}
        cls = attrs.make_class(
            _class_name(upstream), fields, bases=(QnnEdgePass,), frozen=True, slots=True
        )
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        cls.__doc__ = _docstring(spec)
        cls.upstream = upstream  # type: ignore[attr-defined]
        cls.info = PassInfo(  # type: ignore[attr-defined]
            name=spec.name,
            level_in=Level.EDGE,
            requires={facts.EDGE_IR_RELAXED},
            after=tuple(after),
            before=(PartitionQnnPass,),
            delegation="qnn" if spec.qnn_only else None,
        )
        built[upstream] = cls
    return {u: built[u] for u in _BY_UPSTREAM}  # table order


#: Upstream class name -> generated pteflow pass class, in table order.
PASSES: dict[str, type[QnnEdgePass]] = _build()
globals().update({cls.__name__: cls for cls in PASSES.values()})


def passes(names: tuple[str, ...] = EXPORT_LLAMA_SET) -> list[QnnEdgePass]:
    """Instances of the QNN edge passes for ``names`` (upstream class names)."""
    return [PASSES[n]() for n in names]
