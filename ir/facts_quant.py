"""Facts about quantized linears that decide where linear rewrites may run.

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

from typing import TYPE_CHECKING

from .facts import Fact, op_name
from .levels import Level

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
    from .invariants import observer_nodes

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
