"""XNNPACK: ExecuTorch's CPU delegate (fp32, dynamic and static int8, 4-bit weights).

What it contributes: an availability probe, its partition passes in export_llama's order
(dynamic-quant first, then the general partitioner), and the partitioners themselves for
code that calls ExecuTorch directly; its pt2e quantizers (``quantizer.py``, built by
``pt2e-prepare{quantizer=xnnpack-...}``) and its post pass ``convert-to-linear``.
Named pipelines: ``xnnpack_default``, ``xnnpack_8da4w``, ``xnnpack_pt2e``.
"""

from __future__ import annotations

from typing import Any

BACKEND_ID = "XnnpackBackend"
DEFAULT_PIPELINE = "xnnpack_default"


def unavailable_reason() -> str | None:
    """Why XNNPACK lowering cannot run here (``executorch.backends.xnnpack`` missing), or None.

    Whether the runtime here executes the result is ``runtime_unavailable_reason``.
    """
    from ._partitioner import xnnpack_missing

    return xnnpack_missing()  # the runtime is the other question (backend_status asks both)


def runtime_unavailable_reason() -> str | None:
    """Why an XNNPACK-delegated ``.pte`` cannot execute in this process's runtime, or None."""
    from ..runtime import runtime_missing

    return runtime_missing(BACKEND_ID, "install an executorch wheel built with XNNPACK")


def partition_passes(*, extended_ops: bool = True, enable_bf16: bool = False) -> list[Any]:
    """The partition passes, in export_llama's order.

    ``extended_ops=False`` is export_llama's ``-X`` alone (only the dynamic-quant
    partitioner); ``True`` adds the general partitioner after it (``--xnnpack-extended-ops``).
    """
    from .partition_xnnpack import PartitionXnnpackPass
    from .partition_xnnpack_dq import PartitionXnnpackDqPass

    passes: list[Any] = [PartitionXnnpackDqPass(enable_bf16=enable_bf16)]
    if extended_ops:
        passes.append(PartitionXnnpackPass(enable_bf16=enable_bf16))
    return passes


def partitioners(*, extended_ops: bool = True, enable_bf16: bool = False) -> list[Any]:
    """ExecuTorch partitioner objects, same order and options as ``partition_passes``."""
    return [
        p.make_partitioner()
        for p in partition_passes(extended_ops=extended_ops, enable_bf16=enable_bf16)
    ]
