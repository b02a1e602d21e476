"""Quantization facts: what quantized the program (pt2e, 8da4w, int8 weights, embeddings,
the KV cache), and where quantized linears may run.

torchao's 8da4w linear is traced as ``choose_qparams_affine -> quantize_affine ->
dequantize_affine`` on the activation and ``dequantize_affine(int weight)`` on the weight,
all inside the ``nn.Linear``'s source partition. Outside a delegate nothing can run it:
its ops have no ExecuTorch kernels (no out variants), and XNNPACK's ConvertToLinearPass
rebuilds the partition as ``aten.linear(x, int8 weight)``, which ``aten::linear.out`` has
no kernel for (``{Float, Char, Float}``). pt2e's quantized linears are different: their
``dequantize_per_channel`` sits outside the linear's partition, survives the rewrite and
has a kernel, so they do not count here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .fact import Fact, ops_present
from .facts_model import KV_CACHE_QUANTIZED, SDPA_QUANTIZED
from .invariants import observer_nodes
from .levels import Level
from .views import lowered_modules, op_name

if TYPE_CHECKING:
    import torch

    from .program import Program

_LINEARS = {"aten.linear": 1, "aten.mm": 1, "aten.addmm": 2}  # op -> index of the weight
# Ops a weight passes through unchanged in value on its way to the matmul.
_LAYOUT = {
    "aten.permute",
    "aten.permute_copy",
    "aten.t",
    "aten.t_copy",
    "aten.transpose",
    "aten.transpose_copy",
    "aten.view",
    "aten.view_copy",
    "aten.reshape",
    "aten.clone",
    "aten.expand_copy",
    "dim_order_ops._clone_dim_order",
}
_TORCHAO = "torchao."


def _base(name: str) -> str:
    return name.rsplit(".", 1)[0]  # aten.mm.default / aten.mm.out -> aten.mm


def _broken_linear(node: torch.fx.Node) -> str | None:
    """Why ``node`` (a linear, mm or addmm) cannot run outside a delegate, or None."""
    import torch

    index = _LINEARS.get(_base(op_name(node.target)))
    if index is None or len(node.args) <= index:
        return None
    weight = node.args[index]
    for _ in range(6):
        if not isinstance(weight, torch.fx.Node):
            return None
        if weight.op == "call_function" and op_name(weight.target).startswith(_TORCHAO):
            return f"reads its weight through {op_name(weight.target)} (a torchao quantized linear)"
        val = weight.meta.get("val")
        if isinstance(val, torch.Tensor) and not val.is_floating_point():
            return f"multiplies by {weight.name}, an integer ({val.dtype}) weight"
        if weight.op != "call_function" or _base(op_name(weight.target)) not in _LAYOUT:
            return None
        weight = weight.args[0]
    return None


def check_torchao_linears_delegated(program: Program) -> str | None:
    """``torchao-linears.delegated``: no linear outside the delegates is a torchao quantized
    linear or multiplies by an integer weight.

    EAGER: no ``nn.Linear`` holds a torchao tensor-subclass weight (by class name, without
    importing torchao). ATEN and later: the top-level graphs (delegates excluded).
    """
    if program.level == Level.EAGER:
        for method, module in program.modules().items():
            for name, sub in module.named_modules():
                weight = getattr(sub, "weight", None)
                mro = type(weight).__mro__ if weight is not None else ()
                if any(c.__name__ == "TorchAOBaseTensor" for c in mro):
                    return f"method {method!r}: {name or 'the model'} holds a torchao weight"
        return None
    for method, gm in program.graph_modules().items():
        for node in gm.graph.nodes:
            if node.op != "call_function":
                continue
            why = _broken_linear(node)
            if why:
                return f"method {method!r}: {node.name} ({op_name(node.target)}) {why}"
    return None


TORCHAO_LINEARS_DELEGATED = Fact(
    "torchao-linears.delegated",
    "every torchao (8da4w) linear is inside a delegate: outside one no kernel runs it",
    check_torchao_linears_delegated,
    assumed=True,
)


def check_no_pt2e_observers(program: Program) -> str | None:
    """``pt2e.no-observers``: no graph calls a pt2e observer (nothing is half-quantized)."""
    if program.level != Level.ATEN:
        return None
    for method, gm in program.graph_modules().items():
        found = observer_nodes(gm)
        if found:
            return f"method {method!r} still calls {len(found)} pt2e observer(s)"
    return None


#: Assumed like ``torchao-linears.delegated``: pt2e-prepare invalidates it, pt2e-convert
#: provides it again, and to-edge requires it, so a pipeline that prepares without
#: converting is refused by the plan instead of failing inside to_edge.
PT2E_NO_OBSERVERS = Fact(
    "pt2e.no-observers",
    "no pt2e observer is left in the graph (prepare_pt2e's observers were converted)",
    check_no_pt2e_observers,
    assumed=True,
)


# --------------------------------------------------------------------------- what quantized it

QUANTIZED_PT2E = Fact(
    "quantized.pt2e",
    "the graph is quantized by a pt2e quantizer (quantize/dequantize ops present)",
    ops_present(
        "quantized_decomposed.quantize_per_tensor",
        "quantized_decomposed.quantize_per_channel",
        "quantized_decomposed.dequantize_per_channel",
        "quantized_decomposed.choose_qparams",
    ),
)


def _graphs(program: Program) -> Iterator[tuple[torch.fx.GraphModule, bool]]:
    """Every graph module and whether it is inside a delegate (kept original graphs)."""
    todo = [(gm, False) for gm in program.graph_modules().values()]
    while todo:
        gm, inside = todo.pop()
        yield gm, inside
        for lowered in lowered_modules(gm):
            if getattr(lowered, "original_module", None) is not None:
                todo.append((lowered.original_module.graph_module, True))


def _const_input(node: object, dtype: object) -> bool:
    """A graph input (placeholder) of that dtype."""
    val = getattr(node, "meta", {}).get("val")
    return getattr(node, "op", None) == "placeholder" and val is not None and val.dtype == dtype


def _check_8da4w(program: Program) -> str | None:
    if program.level < Level.ATEN:
        return None
    import torch

    weights = dynamic = 0
    for gm, inside in _graphs(program):
        for n in gm.graph.nodes:
            if n.op != "call_function":
                continue
            name = op_name(n.target)
            if name == "torchao.choose_qparams_affine.default":
                dynamic += 1
            elif name == "torchao.dequantize_affine.default" and _const_input(
                n.args[0], torch.int8
            ):
                weights += 1
                users = {op_name(u.target) for u in n.users}
                if inside and not all(u.startswith("aten.linear.") for u in users):
                    return (
                        f"8da4w weight {n.args[0].name} is dequantized into "
                        f"{', '.join(sorted(users))} inside a delegate: the linear was "
                        "decomposed before partitioning (keep aten.linear whole in to-edge)"
                    )
    if not weights:
        return "no torchao.dequantize_affine of an int8 weight (8da4w) in the graph"
    return None if dynamic else "no torchao.choose_qparams_affine (8da4w's dynamic activations)"


def _check_int8_weight(program: Program) -> str | None:
    if program.level < Level.ATEN:
        return None
    import torch

    for gm, _ in _graphs(program):
        for n in gm.graph.nodes:
            if (
                n.op == "call_function"
                and op_name(n.target).startswith(
                    ("aten._to_copy.", "dim_order_ops._to_dim_order_copy.")
                )
                and _const_input(n.args[0], torch.int8)
                and n.args[0].meta["val"].dim() == 2
                and n.meta.get("val") is not None
                and n.meta["val"].is_floating_point()
            ):
                return None
    return "no int8 weight cast to float (int8 weight-only linear) in the graph"


def _check_observed(program: Program) -> str | None:
    if program.level > Level.ATEN:
        return "pt2e observers cannot outlive the ATEN level"
    if program.level < Level.ATEN:
        return None
    for method, gm in program.graph_modules().items():
        if not observer_nodes(gm):
            return f"method {method!r} has no pt2e observer"
    return None


QUANTIZED_8DA4W = Fact(
    "quantized.8da4w",
    "linear weights are int4 (grouped) with dynamically quantized int8 activations",
    _check_8da4w,
)
QUANTIZED_INT8_WEIGHT = Fact(
    "quantized.int8-weight",
    "linear weights are int8 (weight-only), dequantized at use",
    _check_int8_weight,
)
EMBEDDING_QUANTIZED = Fact(
    "embedding.quantized",
    "the token embedding table is quantized",
    ops_present(
        "quantized_decomposed.embedding_byte",
        "quantized_decomposed.embedding_4bit",
        "quantized_decomposed.embedding_2bit",
    ),
)
PT2E_OBSERVED = Fact(
    "pt2e.observed",
    "a pt2e quantizer has inserted observers (prepare_pt2e)",
    _check_observed,
)
PT2E_CALIBRATED = Fact(
    "pt2e.calibrated",
    "the observers have seen calibration data",
)

#: Facts a quantization pass establishes: from the pass that provides one of them on, the
#: program computes something other than the float model, by design. The program right
#: after the last of them is the reference an undelegated .pte must equal.
QUANTIZATION = frozenset(
    {
        QUANTIZED_PT2E,
        QUANTIZED_8DA4W,
        QUANTIZED_INT8_WEIGHT,
        EMBEDDING_QUANTIZED,
        KV_CACHE_QUANTIZED,
        SDPA_QUANTIZED,
    }
)
