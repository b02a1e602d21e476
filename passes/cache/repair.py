"""What ExecuTorch's serde loses on the way through the cache, put back on the decoded
program: positional arguments passed by keyword, symbolic shape ranges, and tensors'
``requires_grad`` (``codec``'s decode calls these).
"""

from __future__ import annotations

from typing import Any


def positional_counts(ep: Any) -> dict[str, int]:
    """How many positional arguments each op call of the graph has (by node name)."""
    return {
        n.name: len(n.args)
        for n in ep.graph.nodes
        if n.op == "call_function" and hasattr(n.target, "_schema")
    }


def restore_positional(ep: Any, counts: dict[str, int]) -> None:
    """Put arguments back where they were: positional or keyword, as stored.

    Upstream trap (torch.export and executorch serde): deserialized op calls pass every
    argument after the first defaulted one by keyword (``dequantize_affine(x, ...,
    quant_min=-8, quant_max=7)``). XNNPACK reads quantization parameters by position
    (``quant_params.py``: ``args[-2]``, ``args[-3]``), so it misreads a restored 8da4w
    graph ("Only 4b group quantization is supported") that a fresh run lowers.
    """
    for node in ep.graph.nodes:
        want = counts.get(node.name)
        if want is None or node.op != "call_function" or len(node.args) == want:
            continue
        schema = node.target._schema.arguments
        args, kwargs = list(node.args), dict(node.kwargs)
        while len(args) < want:
            arg = schema[len(args)]
            if arg.name in kwargs:
                args.append(kwargs.pop(arg.name))
            elif arg.has_default_value():
                args.append(arg.default_value)
            else:
                break
        while len(args) > want:
            kwargs[schema[len(args) - 1].name] = args.pop()
        node.args, node.kwargs = tuple(args), kwargs
    ep.graph_module.recompile()


def bound(text: str) -> Any:
    from torch.utils._sympy.numbers import int_oo

    return {"int_oo": int_oo, "-int_oo": -int_oo}.get(text) or int(text)


def restore_ranges(ep: Any, ranges: dict[str, tuple[str, str]]) -> Any:
    """Put back the value ranges of the symbols serde deserialized with other bounds.

    Upstream trap (executorch 1.5.1 serde): unbacked symbols (``u0``: the KV-cache
    position read from a tensor) come back with a lower bound of 2 instead of 0, and
    ``to_executorch``'s constraint-based memory planning then bounds a dynamic dim one
    lower (126 instead of 127 rows for max_seq_len 128): a different, wrong .pte.
    """
    from torch.utils._sympy.value_ranges import ValueRanges

    env = None
    for node in ep.graph.nodes:
        val = node.meta.get("val")
        mode = getattr(val, "fake_mode", None)
        if mode is not None and mode.shape_env is not None:
            env = mode.shape_env
            break
    for sym in list(ep.range_constraints):
        if str(sym) in ranges:
            lo, hi = ranges[str(sym)]
            ep.range_constraints[sym] = ValueRanges(bound(lo), bound(hi))
    if env is not None:
        for sym in list(env.var_to_range):
            if str(sym) in ranges:
                lo, hi = ranges[str(sym)]
                env.var_to_range[sym] = ValueRanges(bound(lo), bound(hi))
    return ep


def restore_requires_grad(ep: Any, grads: dict[str, list[str]]) -> None:
    """Upstream trap (serde): parameters come back with ``requires_grad=False``, and the
    emitter writes that flag into the .pte, so the bytes would differ from a fresh run."""
    import torch

    for name in grads["state"]:
        tensor = ep.state_dict.get(name)
        if tensor is not None and not tensor.requires_grad:
            ep.state_dict[name] = torch.nn.Parameter(tensor.detach(), requires_grad=True)
    wanted = set(grads["nodes"])
    for node in ep.graph.nodes:
        val = node.meta.get("val")
        if node.op == "placeholder" and node.name in wanted and not val.requires_grad:
            val.requires_grad_(True)
