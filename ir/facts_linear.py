"""``linear.canonical``: linears left outside delegates are ``aten.linear`` again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fact import Fact
from .levels import Level
from .views import op_name

if TYPE_CHECKING:
    import torch

    from .program import Program

_MATMULS = {"aten.mm": 1, "aten.addmm": 2}  # op -> index of the weight operand
_TRANSPOSES = ("aten.permute_copy", "aten.t_copy", "aten.transpose_copy")
# Ops a weight may pass through on its way to the transpose (quantized or cast weights).
_WEIGHT_PREP = ("dequantize", "aten._to_copy", "dim_order_ops._to_dim_order_copy", "aten.clone")


def _base(name: str) -> str:
    return name.rsplit(".", 1)[0]  # aten.mm.default / aten.mm.out -> aten.mm


def _is_weight(node: torch.fx.Node, user_inputs: set[str]) -> bool:
    """A parameter, buffer or constant, possibly dequantized or cast on the way."""
    import torch

    for _ in range(4):
        if not isinstance(node, torch.fx.Node):
            return False
        if node.op == "get_attr":
            return True
        if node.op == "placeholder":
            return node.name not in user_inputs
        if node.op != "call_function" or not node.args:
            return False
        if not any(f in op_name(node.target) for f in _WEIGHT_PREP):
            return False
        node = node.args[0]  # type: ignore[assignment]
    return False


def _transposed_weight(node: object, user_inputs: set[str]) -> bool:
    import torch

    if not (isinstance(node, torch.fx.Node) and node.op == "call_function"):
        return False
    if _base(op_name(node.target)) not in _TRANSPOSES or not node.args:
        return False
    src = node.args[0]
    return isinstance(src, torch.fx.Node) and _is_weight(src, user_inputs)


def check_linear_canonical(program: Program) -> str | None:
    """``linear.canonical``: no mm/addmm outside delegates multiplies by a transposed weight.

    That pair (``permute_copy(W) -> mm/addmm``) is what to-edge makes of ``aten.linear``
    and what ConvertToLinearPass turns back into one ``linear``. Checked at EDGE and
    EXECUTORCH (out variants); the ATen graph still has ``aten.linear``. After to-executorch
    with constant propagation the transpose of a weight is folded into a new constant, so
    the check can only pass there: it is meaningful on the edge program.
    """
    if program.level < Level.EDGE:
        return None
    for method, ep in program.exported_programs().items():
        user_inputs = set(ep.graph_signature.user_inputs)
        for node in ep.graph_module.graph.nodes:
            if node.op != "call_function":
                continue
            name = op_name(node.target)
            index = _MATMULS.get(_base(name))
            if index is None or len(node.args) <= index:
                continue
            weight = node.args[index]
            if _transposed_weight(weight, user_inputs):
                return (
                    f"method {method!r}: {node.name} ({name}) multiplies by "
                    f"{weight.name}, a transposed weight: a linear left decomposed "
                    "outside the delegates"
                )
    return None


LINEAR_CANONICAL = Fact(
    "linear.canonical",
    "linear layers left outside delegates are aten.linear, not permute + mm/addmm",
    check_linear_canonical,
)
