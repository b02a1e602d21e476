from __future__ import annotations

from typing import Any

import attrs

from pteflow.ir import facts
from pteflow.passes.partition.availability import missing_modules
from pteflow.passes.partition.lowering import is_bool
from pteflow.passes.partition.partitioner import LoweringPass, partitioner_info

DELEGATED_VULKAN = facts.delegated("VulkanBackend", "vulkan")


def vulkan_missing() -> str | None:
    """Why Vulkan lowering cannot run here, or None (lowering needs no GPU)."""
    gone = missing_modules("executorch.backends.vulkan.partitioner.vulkan_partitioner")
    if not gone:
        return None
    return f"{gone[0]} is not installed (an executorch wheel with the Vulkan backend)"


@attrs.frozen
class PartitionVulkanPass(LoweringPass):
    """Lower what ExecuTorch's Vulkan (GPU) delegate supports to it.

    Requires: an edge program. Provides: delegated.vulkan.
    Wraps export_llama's ``get_vulkan_partitioner``: ``VulkanPartitioner`` with
    ``require_dynamic_shapes`` (export_llama passes ``enable_dynamic_shape``: with it on,
    only ops whose Vulkan kernels resize at run time are taken) and ``force_fp16``
    (export_llama's ``--vulkan-force-fp16``). Listed before ``partition-xnnpack`` it gets
    first pick, as in export_llama's ``-V -X``; XNNPACK takes what it left. The to-edge pass
    asks this partitioner which ops to keep whole. Lowering needs no GPU; executing the
    ``.pte`` needs a runtime built with Vulkan.
    """

    info = partitioner_info("partition-vulkan", DELEGATED_VULKAN)
    delegation = "vulkan"
    require_dynamic_shapes: bool = attrs.field(default=True, validator=is_bool)
    force_fp16: bool = attrs.field(default=False, validator=is_bool)

    def unavailable_reason(self) -> str | None:
        return vulkan_missing()

    def make_partitioner(self) -> Any:
        from executorch.extension.llm.export.partitioner_lib import get_vulkan_partitioner

        return get_vulkan_partitioner("fp32", self.require_dynamic_shapes, self.force_fp16)
