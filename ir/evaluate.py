"""Running a Program on inputs, at any level, to compare numerics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .levels import Level

if TYPE_CHECKING:
    import torch

    from .program import Program


def flat_tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in a (nested) output, in pytree order."""
    import torch
    from torch.utils._pytree import tree_flatten

    return [v for v in tree_flatten(value)[0] if isinstance(v, torch.Tensor)]


def load_runtime_program(data: bytes) -> Any:
    """Load .pte bytes in ``executorch.runtime``, registering the LLM custom ops first.

    A .pte that uses ``llama::`` ops (custom SDPA, KV-cache update) only loads
    once ``executorch.extension.llm.custom_ops`` is imported in this process.
    """
    import contextlib

    from executorch.runtime import Runtime

    with contextlib.suppress(ImportError):  # the ops library is optional for plain models
        # the package's __init__ is empty: this module registers the kernels
        import executorch.extension.llm.custom_ops.custom_ops
    with contextlib.suppress(ImportError):
        import executorch.kernels.quantized  # noqa: F401
    return Runtime.get().load_program(data)


def run_method(
    program: Program, method: str, inputs: Sequence[Any], *, runtime_program: Any = None
) -> list[torch.Tensor]:
    """Outputs of ``method`` on ``inputs`` as a flat list of tensors.

    EAGER and ATEN run directly; EDGE through ``exported_program().module()``
    (delegates run their original graphs); EXECUTORCH in ``executorch.runtime``.
    Pass ``runtime_program`` to reuse a loaded program (and its state, e.g. a
    KV cache) across calls.
    """
    import torch
    from torch.utils._pytree import tree_flatten

    with torch.no_grad():
        if program.level == Level.EAGER:
            return flat_tensors(program.modules()[method](*inputs))
        if program.level in (Level.ATEN, Level.EDGE):
            module = program.exported_programs()[method].module()
            return flat_tensors(module(*inputs))
        # keep the runtime program referenced while its method runs (dropping it
        # early crashes the runtime)
        loaded = runtime_program or load_runtime_program(program.artifact.buffer)
        loaded_method = loaded.load_method(method)
        flat = list(tree_flatten(tuple(inputs))[0])
        out = flat_tensors(loaded_method.execute(flat))
        del loaded_method, loaded
        return out


def max_abs_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """The largest absolute difference over paired outputs (inf on a shape mismatch)."""
    if len(a) != len(b):
        return float("inf")
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            return float("inf")
        if x.numel():
            worst = max(worst, (x.double() - y.double()).abs().max().item())
    return worst
