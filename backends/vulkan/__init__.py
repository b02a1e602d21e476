"""Vulkan: ExecuTorch's GPU delegate (Android and desktop GPUs through Vulkan compute).

What it contributes:

* ``unavailable_reason()``: can pteflow *lower* to Vulkan here (the partitioner imports;
  lowering needs no GPU); ``runtime_unavailable_reason()``: can this process's runtime
  *execute* a Vulkan ``.pte`` (only runtimes built with Vulkan register ``VulkanBackend``);
* its partition pass ``partition-vulkan`` and the partitioner; its pt2e quantizer,
  ``make_quantizer()`` (export_llama's ``vulkan_8w``; not offered by ``pt2e-prepare`` yet).

Named pipeline: ``vulkan_default``: Vulkan first, XNNPACK second (export_llama's ``-V -X``);
the run's report records which partitioner claimed each node and what stayed on portable
kernels. ``--verify`` without a Vulkan runtime is skipped with the reason.
"""

from __future__ import annotations

from typing import Any

BACKEND_ID = "VulkanBackend"
DEFAULT_PIPELINE = "vulkan_default"
EXECUTE_ELSEWHERE = (
    "to verify, run the .pte with an ExecuTorch runtime built with EXECUTORCH_BUILD_VULKAN on a "
    "device with a Vulkan GPU"
)


def unavailable_reason() -> str | None:
    """Why Vulkan lowering cannot run here, or None. No imports (find_spec only)."""
    from .partition_vulkan import vulkan_missing

    return vulkan_missing()


def runtime_unavailable_reason() -> str | None:
    """Why a Vulkan-delegated ``.pte`` cannot execute in this process's runtime, or None."""
    from ..runtime import runtime_missing

    return runtime_missing(BACKEND_ID, EXECUTE_ELSEWHERE)


def partition_passes(*, then_xnnpack: bool = True, **options: Any) -> list[Any]:
    """``partition-vulkan`` (options: require_dynamic_shapes, force_fp16), then XNNPACK's.

    XNNPACK's pass is found by name in the registry: no backend imports another.
    """
    from pteflow.passes.registry import load_registry, lookup

    from .partition_vulkan import PartitionVulkanPass

    out: list[Any] = [PartitionVulkanPass(**options)]
    if then_xnnpack:
        out.append(lookup(load_registry(entry_points=False), "partition-xnnpack")())
    return out


def partitioners(**options: Any) -> list[Any]:
    """ExecuTorch partitioner objects, same order and options as ``partition_passes``."""
    return [p.make_partitioner() for p in partition_passes(**options)]


def make_quantizer() -> Any:
    """``VulkanQuantizer`` as export_llama builds it for ``--pt2e_quantize vulkan_8w``."""
    from executorch.extension.llm.export.quantizer_lib import get_vulkan_quantizer

    return get_vulkan_quantizer("vulkan_8w")
