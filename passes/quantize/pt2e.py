"""pt2e quantization on an ExportedProgram, without exporting a second time.

ExecuTorch's ``LLMEdgeManager.pt2e_quantize`` quantizes ``ep.module()`` (the
unlifted graph) and then exports the converted GraphModule again to get an
ExportedProgram back. That second export retraces the whole (now larger)
graph and re-runs the decompositions: on the tiny Llama it costs more than
the first export. pteflow keeps the lifted graph of the ExportedProgram
instead:

* prepare: ``prepare_pt2e`` runs on a copy of the lifted graph (parameters are
  placeholders; the XNNPACK quantizer annotates them the same way). The
  result is an ExportedProgram whose graph holds the observers as
  ``call_module`` nodes. Such a program is not valid for ``torch.export``'s
  verifier, so it is built without validation; ``ep.module()`` still runs it,
  which is how calibration feeds it.
* convert: the constant inputs (parameters, buffers that are never mutated,
  lifted constants) are turned into ``get_attr`` nodes first, so
  ``convert_pt2e`` folds the weight quantization exactly as it does on the
  unlifted graph; then every ``get_attr`` tensor is lifted back into a
  placeholder with its input spec, the few new nodes get ``meta['val']`` by
  running them on fake tensors, and the ExportedProgram is rebuilt (and
  validated) around the same graph. No retrace, no re-decomposition.
"""

from __future__ import annotations

import contextlib
import copy
import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

# re-exported: they live with the ATEN invariant that allows observers
from pteflow.ir.invariants import is_observer, observer_nodes  # noqa: F401

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram


# --------------------------------------------------------------------------- quantizers

#: The quantizers ``pt2e-prepare`` offers, by name. Each belongs to the backend its prefix
#: names: ``pteflow.backends.<prefix>.quantizer`` builds it (``make_pt2e_quantizer``).
XNNPACK_QUANTIZERS = ("xnnpack-dynamic", "xnnpack-dynamic-qc4", "xnnpack-static")
QNN_QUANTIZERS = ("qnn-16a4w", "qnn-8a8w", "qnn-16a16w")
QUANTIZERS = (*XNNPACK_QUANTIZERS, *QNN_QUANTIZERS)
#: program metadata: the methods pt2e-prepare{allow_unquantized=true} left in float
UNQUANTIZED = "pt2e_unquantized"


def make_quantizer(name: str) -> Any:
    """The pt2e quantizer export_llama builds for ``name``, from its backend's package.

    Found by name, the way the registry finds backend passes, so that nothing under
    ``passes/`` imports a backend module (the import direction is backends -> passes).
    """
    import importlib

    if name not in QUANTIZERS:  # the pass's validator keeps this unreachable
        raise ValueError(f"unknown quantizer {name!r}")
    backend = name.split("-", 1)[0]
    module = importlib.import_module(f"pteflow.backends.{backend}.quantizer")
    return module.make_pt2e_quantizer(name)


# --------------------------------------------------------------------------- observers

_ANNOTATION = "quantization_annotation"  # torchao.quantization.pt2e.quantizer Q_ANNOTATION_KEY


def with_graph_module(ep: ExportedProgram, gm: torch.fx.GraphModule) -> ExportedProgram:
    """A shallow copy of ``ep`` around ``gm``, not validated (``gm`` may hold observers).

    Everything but the graph module is shared with ``ep``; ``ep`` is unchanged.
    """
    new = copy.copy(ep)
    new._graph_module = gm
    return new


def copy_graph_module(gm: torch.fx.GraphModule, *, copy_observers: bool) -> torch.fx.GraphModule:
    """A new GraphModule over a deep copy of ``gm``'s graph.

    Tensors and submodules are shared with ``gm``, except observers when
    ``copy_observers`` (so calibrating the copy leaves ``gm`` as it was).
    """
    import torch

    graph, node_map = _copy_graph(gm.graph)
    # The quantizer's annotations name graph nodes; node meta is copied shallowly,
    # so point them at the new nodes, or convert reads the old graph.
    by_id = {id(old): new for old, new in node_map.items() if isinstance(old, torch.fx.Node)}
    for old, new_node in node_map.items():
        if isinstance(old, torch.fx.Node) and _ANNOTATION in old.meta:
            new_node.meta[_ANNOTATION] = copy.deepcopy(old.meta[_ANNOTATION], dict(by_id))
    new = torch.fx.GraphModule(gm, graph)
    new.meta.update(gm.meta)
    if copy_observers:
        # One memo: an observer that serves several nodes under several names (a
        # SharedQuantizationSpec) must stay one observer in the copy. Observers that
        # hold graph nodes (QNN's ConcatObserver finds its inputs' observers through
        # them) get the copy's nodes, never a copy of the old graph.
        memo: dict[int, object] = dict(by_id)
        for node in observer_nodes(new):
            target = str(node.target)
            _set_submodule(new, target, copy.deepcopy(new.get_submodule(target), memo))
    return new


def _copy_graph(old: torch.fx.Graph) -> tuple[torch.fx.Graph, dict]:
    """``copy.deepcopy(graph)``, also returning the old node -> new node map."""
    import torch

    graph = torch.fx.Graph(tracer_cls=old._tracer_cls)
    node_map: dict = {}
    copied = graph.graph_copy(old, node_map, return_output_node=True)
    assert isinstance(copied, tuple), "a graph without an output node"
    output_val, old_output = copied
    graph._codegen = copy.deepcopy(old._codegen)
    new_output = graph.output(output_val, type_expr=getattr(old_output, "type", None))
    new_output.meta = copy.copy(old_output.meta)
    node_map[old_output] = new_output
    return graph, node_map


def _set_submodule(root: torch.nn.Module, target: str, module: torch.nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


# --------------------------------------------------------------------------- prepare


def prepare(ep: ExportedProgram, quantizer: Any) -> ExportedProgram:
    """``prepare_pt2e`` on a copy of ``ep``'s lifted graph; the result holds observers."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    gm = copy_graph_module(ep.graph_module, copy_observers=False)
    with torch.no_grad():
        prepared = prepare_pt2e(gm, quantizer)
    return with_graph_module(ep, prepared)


# --------------------------------------------------------------------------- calibrate


def calibration_module(ep: ExportedProgram) -> torch.nn.Module:
    """A runnable module of ``ep`` whose mutable buffers are private copies.

    Observers are shared with ``ep`` (calibration updates them); the KV cache
    and any other mutated buffer are cloned, so calibration leaves the
    program's initial state untouched.
    """
    mutated = set(ep.graph_signature.buffers_to_mutate.values())
    state = {k: (v.clone() if k in mutated else v) for k, v in ep.state_dict.items()}
    consts = {
        k: (v.clone() if k in mutated and hasattr(v, "clone") else v)
        for k, v in ep.constants.items()
    }
    runner = copy.copy(ep)
    runner._state_dict = state
    runner._constants = consts
    return runner.module()


# --------------------------------------------------------------------------- convert


@contextlib.contextmanager
def folded_weights_pages_released() -> Iterator[None]:
    """While converting: torchao's constant folder reads each float weight to quantize
    it; the memory-mapped checkpoint's pages of a weight are handed back once the node
    that read it has run (``pteflow.ir.mapped_pages``), not left resident beside the
    folded values (at stories, 58 MB of pt2e-convert's peak, the run's)."""
    from torchao.quantization.pt2e.constant_fold import ConstantFolder

    from pteflow.ir import mapped_pages

    def inputs(folder: Any, node: Any) -> list[Any]:
        import torch

        values = (folder.env.get(n) for n in node.all_input_nodes)
        return [v for v in values if isinstance(v, torch.Tensor)]

    with mapped_pages.released_after_each(ConstantFolder, "run_node", inputs):
        yield


#: The targets torchao's ``ConstantFolder.is_impure`` never folds (it folds ``w -> q`` and
#: leaves ``q -> dq`` in the graph), as it lists them; some may not exist in a build.
_DEQUANTIZE_OPS = (
    "quantized_decomposed.dequantize_per_channel.default",
    "quantized_decomposed.dequantize_per_tensor.default",
    "quantized_decomposed.dequantize_per_tensor.tensor",
    "quantized_decomposed.convert_element_type.no_fuse",
    "torchao.dequantize_affine",
)


@contextlib.contextmanager
def dequantized_weights_not_computed() -> Iterator[None]:
    """While converting: torchao's constant folder does not compute a dequantize node's
    value (a float copy of the weight, and the decomposition's float temporaries).

    Its ``run_node`` computes a node's value first and asks ``is_impure`` after; for a
    dequantize op ``is_impure`` says yes, the value is thrown away, and the node is
    reported unknown (so are its users). Reporting it unknown without computing it is
    the same result; at stories the output layer's dequantize alone raised
    pt2e-convert's peak by ~50 MB (the run's peak) and took time for nothing."""
    import torch
    from torchao.quantization.pt2e.constant_fold import ConstantFolder, is_const_source

    from pteflow.ir.replaced import replaced

    skipped = set()
    for dotted in _DEQUANTIZE_OPS:
        with contextlib.suppress(AttributeError, RuntimeError):
            skipped.add(operator.attrgetter(dotted)(torch.ops))
    deduce = ConstantFolder.__dict__.get("_deduce_value")
    if deduce is None:  # renamed upstream: left as it is
        yield
        return

    def deduce_value(folder: Any, node: Any) -> Any:
        if (
            node.op == "call_function"
            and node.target in skipped
            and not is_const_source(node, folder.lifted_constant_names)
        ):
            return folder.unknown_value
        return deduce(folder, node)

    with replaced(ConstantFolder, "_deduce_value", deduce_value):
        yield


def convert(ep: ExportedProgram) -> ExportedProgram:
    """``convert_pt2e`` + ``DuplicateDynamicQuantChainPass`` on ``ep``'s graph (as builder.py).

    Returns a validated ExportedProgram: quantized weights are lifted
    constants, the float weights they replace are gone.
    """
    import torch
    from executorch.backends.transforms.duplicate_dynamic_quant_chain import (
        DuplicateDynamicQuantChainPass,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from .pt2e_lift import one_recompile, rebuild, unlift_constants

    gm = copy_graph_module(ep.graph_module, copy_observers=False)
    specs = unlift_constants(ep, gm)
    with torch.no_grad(), folded_weights_pages_released(), dequantized_weights_not_computed():
        gm = convert_pt2e(gm)
        with one_recompile(gm):  # it regenerates the code after every duplicated chain
            DuplicateDynamicQuantChainPass()(gm)
    return rebuild(ep, gm, specs)
