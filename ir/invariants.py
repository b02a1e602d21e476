"""Level invariants: what must hold of every Program at a level.

Each check raises ``InvariantError`` naming the method and node at fault;
the PassManager adds the name of the pass that produced the program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import InvariantError
from .levels import Level
from .views import op_name

if TYPE_CHECKING:
    import torch

    from .program import Program


def check_eager(program: Program) -> None:
    """EAGER: every method is an ``nn.Module`` with example inputs."""
    import torch

    for method, module in program.artifact.items():
        if not isinstance(module, torch.nn.Module):
            raise InvariantError(
                f"method {method!r} is a {type(module).__name__}, not a torch.nn.Module"
            )
        if method not in program.example_inputs:
            raise InvariantError(f"method {method!r} has no example inputs")


def _lint(method: str, gm: torch.fx.GraphModule) -> None:
    try:
        gm.graph.lint()
    except Exception as e:  # fx raises a bare RuntimeError with the node in the text
        raise InvariantError(f"method {method!r}: graph lint failed: {e}") from e


def check_aten(program: Program) -> None:
    """ATEN: graph lint passes, every node has ``meta['val']``, no ``call_module``."""
    from torch.export import ExportedProgram

    for method, ep in program.artifact.items():
        if not isinstance(ep, ExportedProgram):
            raise InvariantError(
                f"method {method!r} is a {type(ep).__name__}, not a torch.export.ExportedProgram"
            )
        gm = ep.graph_module
        _lint(method, gm)
        for node in gm.graph.nodes:
            if node.op == "call_module":
                if is_observer(gm.get_submodule(node.target)):
                    continue  # pt2e observers, between pt2e-prepare and pt2e-convert
                raise InvariantError(
                    f"method {method!r}: node {node.name} calls module "
                    f"{node.target!r}; an exported graph has no call_module"
                )
            if (
                node.op in ("placeholder", "call_function")
                and "val" not in node.meta
                and _returns_something(node)
            ):
                raise InvariantError(
                    f"method {method!r}: node {node.name} "
                    f"({op_name(node.target)}) has no meta['val']"
                    f"{_where(node)}"
                )


def is_observer(module: object) -> bool:
    """A pt2e observer or fake-quantize module (torch.ao or torchao), by class."""
    return any(c.__name__ in ("ObserverBase", "FakeQuantizeBase") for c in type(module).__mro__)


def observer_nodes(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    """The ``call_module`` nodes of ``gm`` that call a pt2e observer."""
    return [
        n
        for n in gm.graph.nodes
        if n.op == "call_module" and is_observer(gm.get_submodule(n.target))
    ]


def _returns_something(node: torch.fx.Node) -> bool:
    """False for ops that return nothing (``_assert_tensor_metadata``): they carry no val."""
    schema = getattr(node.target, "_schema", None)
    return schema is None or len(schema.returns) > 0


def _where(node: torch.fx.Node) -> str:
    trace = (node.meta.get("stack_trace") or "").strip().splitlines()
    return f" (from {trace[-2].strip()})" if len(trace) >= 2 else ""


def _edge_allowed_non_edge_ops(config: object) -> set[object]:
    """The non-edge ops ExecuTorch's own edge verifier lets through, for this config."""
    from executorch.exir.passes.executorch_prim_ops_registry import _EXECUTORCH_SYM_OPS
    from executorch.exir.passes.replace_aten_with_edge_pass import DISALLOW_LIST

    exceptions = getattr(config, "_core_aten_ops_exception_list", []) or []
    return {*DISALLOW_LIST, *_EXECUTORCH_SYM_OPS, *exceptions}


def _is_edge_or_allowed(target: object, allowed: set[object]) -> bool:
    import operator

    import torch
    from executorch.exir.dialects.edge._ops import EdgeOpOverload

    if isinstance(target, EdgeOpOverload) or target in allowed:
        return True
    if isinstance(target, torch._ops.HigherOrderOperator):
        return True  # executorch_call_delegate, cond, map, ...
    # getitem and symbolic-int arithmetic (python operators on SymInts)
    return getattr(target, "__module__", None) in (operator.__name__, "_operator", "math")


def check_edge(program: Program) -> None:
    """EDGE: lint, only edge-dialect ops outside delegates, ExecuTorch's edge verifier passes.

    The core-ATen part of the verifier follows the manager's own
    ``EdgeCompileConfig``: a program built with ``_check_ir_validity=False``
    (as ConvertToLinearPass needs) keeps its non-core ops legally.
    """
    from executorch.exir import EdgeProgramManager
    from executorch.exir.verification.verifier import EXIREdgeDialectVerifier

    manager = program.artifact
    if not isinstance(manager, EdgeProgramManager):
        raise InvariantError(
            f"an edge program holds a {type(manager).__name__}, not an EdgeProgramManager"
        )
    config = manager.compile_config
    allowed = _edge_allowed_non_edge_ops(config)
    for method in manager.methods:
        gm = manager.exported_program(method).graph_module
        _lint(method, gm)
        for node in gm.graph.nodes:
            if node.op == "call_function" and not _is_edge_or_allowed(node.target, allowed):
                raise InvariantError(
                    f"method {method!r}: node {node.name} calls "
                    f"{op_name(node.target)}, which is not an edge-dialect op"
                    f"{_where(node)}"
                )
        if config._check_ir_validity:
            verifier = EXIREdgeDialectVerifier(
                edge_compile_config=config,
                class_only=True,
                core_aten_ops_exception_list=list(config._core_aten_ops_exception_list),
                preserve_ops=list(config.preserve_ops),
            )
            try:
                verifier()(gm)
            except Exception as e:  # SpecViolationError and ExportError share no base
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise InvariantError(
                    f"method {method!r}: ExecuTorch's edge verifier: {first}"
                ) from e


def check_executorch(program: Program) -> None:
    """EXECUTORCH: the program serializes to a non-empty flatbuffer, and every operator it
    calls outside delegates has a kernel in the runtime here (portable, optimized,
    quantized, LLM custom ops; ``ir.runnable``)."""
    from executorch.exir import ExecutorchProgramManager

    manager = program.artifact
    if not isinstance(manager, ExecutorchProgramManager):
        raise InvariantError(
            f"an executorch program holds a {type(manager).__name__}, "
            "not an ExecutorchProgramManager"
        )
    from .serialized import pte_size

    try:
        size = pte_size(manager)  # serialized when the manager was built; no copy here
    except Exception as e:
        raise InvariantError(f"the program does not serialize: {type(e).__name__}: {e}") from e
    if not size:
        raise InvariantError("the program serialized to zero bytes")
    from .runnable import missing_kernels

    missing = missing_kernels(manager)
    if missing:
        where = "; ".join(f"method {m!r}: {', '.join(ops)}" for m, ops in sorted(missing.items()))
        raise InvariantError(
            f"operators outside the delegates have no kernel in ExecuTorch's runtime here "
            f"(portable, optimized, quantized and LLM custom-op libraries): {where}; "
            "delegate them, or register their kernels before compiling"
        )


CHECKS: dict[Level, Callable[[Program], None]] = {
    Level.EAGER: check_eager,
    Level.ATEN: check_aten,
    Level.EDGE: check_edge,
    Level.EXECUTORCH: check_executorch,
}


def check_level(program: Program) -> None:
    """Run the invariant of the program's level; raise ``InvariantError`` if broken."""
    if set(program.method_names) != set(program.example_inputs) and program.level <= Level.ATEN:
        missing = sorted(set(program.method_names) - set(program.example_inputs))
        if missing:
            raise InvariantError(f"method(s) {missing} have no example inputs")
    CHECKS[program.level](program)
