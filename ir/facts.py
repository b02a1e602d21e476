"""The catalogue of backend-neutral facts (the Fact type is in ``fact.py``).

Backend facts live with their backend (``pteflow.backends.<name>.facts``); quantized
linears' placement facts in ``facts_quant.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .fact import (  # noqa: F401  (re-exported: callers import them from here)
    Checker,
    Fact,
    _eager_module_named,
    _has_delegate,
    all_of,
    delegated,
    eager_classes,
    op_name,
    ops_present,
)
from .levels import Level

if TYPE_CHECKING:
    import torch

    from .program import Program

# --------------------------------------------------------------------------- well-known facts

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
DELEGATED = Fact(
    "delegated", "some of the graph is lowered to a backend delegate", _has_delegate(None)
)


def _graphs(program: Program) -> Iterator[tuple[torch.fx.GraphModule, bool]]:
    """Every graph module and whether it is inside a delegate (kept original graphs)."""
    from .views import _lowered_modules

    todo = [(gm, False) for gm in program.graph_modules().values()]
    while todo:
        gm, inside = todo.pop()
        yield gm, inside
        for lowered in _lowered_modules(gm):
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
    from .invariants import observer_nodes

    for method, gm in program.graph_modules().items():
        if not observer_nodes(gm):
            return f"method {method!r} has no pt2e observer"
    return None


KV_CACHE = Fact(
    "kv_cache",
    "attention keeps a KV cache; the model takes (tokens, {'input_pos': ...})",
    _eager_module_named("KVCache"),
)
KV_CACHE_CUSTOM = Fact(
    "kv_cache.custom",
    "the KV cache is updated with ExecuTorch's llama::update_cache op",
    all_of(
        _eager_module_named("CustomKVCache", "QuantizedKVCache"),
        ops_present("update_cache", "update_quantized_cache"),
    ),
)
KV_CACHE_QUANTIZED = Fact(
    "kv_cache.quantized",
    "the KV cache stores int8 values with per-token scales",
    all_of(
        _eager_module_named("QuantizedKVCache"),
        ops_present("update_quantized_cache", "quantize_per_token"),
    ),
)
SDPA_CUSTOM = Fact(
    "sdpa.custom",
    "attention uses ExecuTorch's fused llama::custom_sdpa op",
    # QuantizedSDPA is the same fused custom op reading an int8 cache
    all_of(
        _eager_module_named("SDPACustom", "QuantizedSDPA"),
        ops_present("custom_sdpa", "custom_quantized_sdpa"),
    ),
)
SDPA_QUANTIZED = Fact(
    "sdpa.quantized",
    "attention reads the int8 KV cache directly (llama::custom_quantized_sdpa)",
    all_of(_eager_module_named("QuantizedSDPA"), ops_present("custom_quantized_sdpa")),
)


def _native_rms_norm(program: Program) -> str | None:
    """EAGER: torch.nn.RMSNorm modules and none of ExecuTorch's hand-written ones."""
    if program.level != Level.EAGER:
        return None
    import torch

    found = hand_written = 0
    for module in program.modules().values():
        for sub in module.modules():
            if isinstance(sub, torch.nn.RMSNorm):
                found += 1
            elif type(sub).__name__ == "RMSNorm":
                hand_written += 1
    if hand_written:
        return f"{hand_written} hand-written RMSNorm module(s) remain"
    return None if found else "no torch.nn.RMSNorm module"


RMSNORM_NATIVE = Fact(
    "rmsnorm.native",
    "RMSNorm is torch's native rms_norm, not the hand-written formula",
    all_of(_native_rms_norm, ops_present("rms_norm")),
)
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
DTYPE_OVERRIDDEN = Fact(
    "dtype.overridden",
    "parameters and buffers are cast to the requested compute dtype",
)
EDGE_IR_RELAXED = Fact(
    "edge.ir-relaxed",
    "the edge program was built with _check_ir_validity=False, so non-core ops are legal",
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
# --------------------------------------------------------------------------- linear.canonical
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
CONST_PROPAGATED = Fact(
    "const.propagated",
    "constants have been folded (quant fusion and constant propagation ran)",
)
