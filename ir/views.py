"""Read-only views of a Program: op names, op histograms, delegation, a stable dump, a diff.

The bottom of ``ir/`` with ``levels``: it imports no other ir module, so facts, invariants
and checks can all read graphs through it.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs

from .levels import Level

if TYPE_CHECKING:
    import torch

    from .program import Program


def op_name(target: object) -> str:
    """A stable name for a graph target: ``aten.mm.default``, ``llama.custom_sdpa.default``."""
    name = getattr(target, "_name", None)  # OpOverload / EdgeOpOverload: 'aten::add.Tensor'
    overload = getattr(target, "_overloadname", None)
    if isinstance(name, str) and "::" in name:
        ns, op = name.split("::", 1)
        base = op.split(".", 1)[0]
        return f"{ns}.{base}.{overload or 'default'}"
    mod = getattr(target, "__module__", None) or ""
    qual = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    return f"{mod}.{qual}" if qual else str(target)


def is_delegate_call(node: torch.fx.Node) -> bool:
    """A call of a lowered module (``executorch_call_delegate``)."""
    return node.op == "call_function" and (
        getattr(node.target, "__name__", "") == "executorch_call_delegate"
    )


def named_delegates(gm: torch.fx.GraphModule) -> Iterator[tuple[str, Any]]:
    """(submodule name, lowered module) of every delegate call in ``gm``."""
    for node in gm.graph.nodes:
        if is_delegate_call(node):
            yield node.args[0].target, getattr(gm, node.args[0].target)


def lowered_modules(gm: torch.fx.GraphModule) -> Iterator[Any]:
    return (lowered for _name, lowered in named_delegates(gm))


def graph_op_histogram(gm: torch.fx.GraphModule, *, include_delegated: bool = False) -> Counter:
    """Count of ``call_function`` targets in one graph, keyed by the op object."""
    counts: Counter = Counter()
    for node in gm.graph.nodes:
        if node.op == "call_function":
            counts[node.target] += 1
    if include_delegated:
        for lowered in lowered_modules(gm):
            inner = getattr(lowered, "original_module", None)
            if inner is not None:
                counts.update(graph_op_histogram(inner.graph_module, include_delegated=True))
    return counts


def op_histogram(program: Program, *, include_delegated: bool = False) -> Counter:
    """Count of ops over every method, keyed by the op object.

    EAGER programs count leaf modules by class instead (there is no graph yet).
    ``include_delegated`` also counts the ops inside delegates (from the
    lowered module's original program, where the backend kept it).
    """
    counts: Counter = Counter()
    if program.level == Level.EAGER:
        for module in program.modules().values():
            for sub in module.modules():
                if not any(True for _ in sub.children()):
                    counts[type(sub)] += 1
        return counts
    for gm in program.graph_modules().values():
        counts.update(graph_op_histogram(gm, include_delegated=include_delegated))
    return counts


def wrapped_ops(program: Program) -> set[Any]:
    """Ops called through a functionalization wrapper (``auto_functionalized``)."""
    found: set[Any] = set()
    if program.level == Level.EAGER:
        return found
    for gm in program.graph_modules().values():
        for node in gm.graph.nodes:
            if (
                node.op == "call_function"
                and "auto_functionalized" in getattr(node.target, "__name__", "")
                and node.args
            ):
                found.add(node.args[0])
    return found


def node_count(program: Program) -> int:
    """Number of ops (EAGER: leaf modules) over every method."""
    return sum(op_histogram(program).values())


@attrs.frozen
class Delegate:
    """One delegated subgraph."""

    method: str
    backend_id: str
    name: str
    ops: int  # ops inside, when the backend kept the original program; else 0


def delegation_summary(program: Program) -> list[Delegate]:
    """Every delegate in every method, in graph order (EDGE and EXECUTORCH)."""
    if program.level < Level.EDGE:
        return []
    out = []
    for method, gm in program.graph_modules().items():
        for lowered in lowered_modules(gm):
            inner = getattr(lowered, "original_module", None)
            n = sum(graph_op_histogram(inner.graph_module).values()) if inner is not None else 0
            out.append(Delegate(method, lowered.backend_id, type(lowered).__name__, n))
    return out


def delegated_node_count(program: Program) -> dict[str, int]:
    """Ops inside delegates, per backend id."""
    counts: Counter = Counter()
    for d in delegation_summary(program):
        counts[d.backend_id] += d.ops
    return dict(counts)


# --------------------------------------------------------------------------- dump and diff


def _val(meta: dict) -> str:
    val = meta.get("val")
    if val is None:
        return ""
    if isinstance(val, list | tuple):
        return "(" + ", ".join(_one_val(v) for v in val) + ")"
    return _one_val(val)


def _one_val(v: Any) -> str:
    shape = getattr(v, "shape", None)
    dtype = getattr(v, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{str(dtype).removeprefix('torch.')}[{', '.join(str(s) for s in shape)}]"
    return type(v).__name__ if v is not None else "None"


def _arg(a: Any) -> str:
    import torch

    if isinstance(a, torch.fx.Node):
        return f"%{a.name}"
    if isinstance(a, list | tuple):
        inner = ", ".join(_arg(x) for x in a)
        return f"[{inner}]" if isinstance(a, list) else f"({inner})"
    if isinstance(a, dict):
        return "{" + ", ".join(f"{k}: {_arg(v)}" for k, v in a.items()) + "}"
    if isinstance(a, torch.dtype | torch.device | torch.memory_format | torch.layout):
        return str(a)
    if isinstance(a, float):
        return repr(a)
    return repr(a) if isinstance(a, str) else str(a)


def dump_graph(gm: torch.fx.GraphModule) -> str:
    """A stable, line-per-node text of one graph: same graph, same text."""
    lines = []
    for node in gm.graph.nodes:
        ty = _val(node.meta)
        ty = f" : {ty}" if ty else ""
        if node.op == "placeholder":
            lines.append(f"%{node.name}{ty} = input")
        elif node.op == "output":
            lines.append(f"return {_arg(node.args[0])}")
        elif node.op == "get_attr":
            lines.append(f"%{node.name}{ty} = attr {node.target}")
        else:
            target = op_name(node.target) if node.op == "call_function" else str(node.target)
            args = ", ".join(
                [_arg(a) for a in node.args] + [f"{k}={_arg(v)}" for k, v in node.kwargs.items()]
            )
            lines.append(f"%{node.name}{ty} = {target}({args})")
    return "\n".join(lines) + "\n"


def dump(program: Program, *, facts: bool = True) -> str:
    """A stable text of the whole program: per method, its graph (EAGER: the module tree).

    ``facts=False`` leaves out the facts line (the structure alone).
    """
    parts = [f"# level: {program.level.label}"]
    if facts:
        parts.append(f"# facts: {', '.join(sorted(f.name for f in program.facts)) or '-'}")
    if program.level == Level.EAGER:
        for method, module in program.modules().items():
            parts.append(f"## method {method}\n{module}")
        return "\n".join(parts) + "\n"
    for method, gm in program.graph_modules().items():
        parts.append(f"## method {method}\n{dump_graph(gm).rstrip()}")
        for lowered_name, lowered in named_delegates(gm):
            inner = getattr(lowered, "original_module", None)
            body = dump_graph(inner.graph_module).rstrip() if inner is not None else "(opaque)"
            parts.append(f"## delegate {method}/{lowered_name} -> {lowered.backend_id}\n{body}")
    return "\n".join(parts) + "\n"


def diff(
    before: str,
    after: str,
    *,
    before_name: str = "before",
    after_name: str = "after",
    context: int = 3,
) -> str:
    """Unified diff of two dumps; empty when they are equal."""
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=before_name,
            tofile=after_name,
            n=context,
        )
    )


@attrs.frozen
class PteMethod:
    """What a serialized method runs: delegate calls and portable-kernel calls."""

    name: str
    delegates: int
    delegate_calls: int
    kernel_calls: int
    backends: tuple[str, ...]


def _program_size(data: bytes) -> int | None:
    """The flatbuffer's size from a .pte's extended header (its first 40 bytes suffice);
    None without one (the whole file is the flatbuffer)."""
    from executorch.exir._serialize._program import _get_extended_header

    header = _get_extended_header(memoryview(data))  # a view: the segments are not copied
    return header.program_size if header is not None else None


def pte_program_part(data: bytes) -> bytes:
    """The flatbuffer of a serialized ``.pte`` without the segments after it (weights,
    delegate payloads): what its methods, delegates and instructions are read from."""
    size = _program_size(data)
    return data if size is None else data[:size]


def read_pte_program_part(path: Any) -> bytes:
    """``pte_program_part`` of the ``.pte`` file at ``path``, reading only that part."""
    with open(path, "rb") as f:
        head = f.read(64)
        size = _program_size(head)
        if size is None:
            return head + f.read()
        return (head + f.read(max(0, size - len(head))))[:size]


def pte_summary(data: bytes) -> dict[str, PteMethod]:
    """Per method of a serialized ``.pte`` (or its ``pte_program_part``): its delegates and
    kernel calls.

    Reads the flatbuffer only (no runtime, no segments), so it works for any backend,
    including ones this machine cannot execute.
    """
    from executorch.exir._serialize._program import _flatbuffer_to_program

    out = {}
    for plan in _flatbuffer_to_program(pte_program_part(data)).execution_plan:
        kinds: Counter = Counter()
        for chain in plan.chains:
            for ins in chain.instructions:
                kinds[type(ins.instr_args).__name__] += 1
        out[plan.name] = PteMethod(
            name=plan.name,
            delegates=len(plan.delegates),
            delegate_calls=kinds["DelegateCall"],
            kernel_calls=kinds["KernelCall"],
            backends=tuple(sorted({d.id for d in plan.delegates})),
        )
    return out
