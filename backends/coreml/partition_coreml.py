from __future__ import annotations

from typing import Any

import attrs

from pteflow.ir import facts
from pteflow.passes.base import option_error
from pteflow.passes.partition.availability import missing_modules
from pteflow.passes.partition.partitioner import LoweringPass, partitioner_info

from .coreml_replace_sdpa import check_ios

DELEGATED_COREML = facts.delegated("CoreMLBackend", "coreml")

COMPUTE_UNITS = ("cpu_only", "cpu_and_ne", "cpu_and_gpu", "all")
#: export_llama's --coreml-quantize: coremltools weight compression at lowering
COREML_QUANTIZE = ("none", "b4w", "c4w")


def coreml_missing() -> str | None:
    """Why CoreML lowering cannot run here, or None (coremltools and the partitioner)."""
    gone = missing_modules("coremltools", "executorch.backends.apple.coreml.partition")
    if not gone:
        return None
    if "coremltools" in gone:
        return "coremltools is not installed (pip install coremltools); CoreML lowers with it"
    return f"{gone[0]} is not installed (an executorch wheel with the CoreML backend)"


def _one_of(values: tuple[str, ...]) -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in values:
            raise option_error(
                instance.info.name, attribute.name, f"{value!r} is not one of {', '.join(values)}"
            )

    return check


@attrs.frozen
class PartitionCoremlPass(LoweringPass):
    """Lower what CoreML supports (for the tiny Llama: all of it) to the CoreML delegate.

    Requires: an edge program. Provides: delegated.coreml.
    Wraps export_llama's ``get_coreml_partitioner``: ``CoreMLPartitioner`` with compile specs
    for the iOS deployment target ``ios`` (15..18; fp16 compute precision; ``compute_units``
    default cpu_only, export_llama's), optional coremltools weight compression at lowering
    (``quantize``: b4w = int4 per block of 32, c4w = int4 per channel; both need iOS 18),
    and ``take_over_mutable_buffer=False`` (the KV caches stay ExecuTorch buffers: the OSS
    CoreML runtime has no state support, as upstream notes). The to-edge pass asks this
    partitioner which ops to keep whole, as export_llama's ``to_edge_transform_and_lower``
    does. Lowers on Linux; only macOS/iOS runtimes execute the result.
    """

    info = partitioner_info("partition-coreml", DELEGATED_COREML)
    delegation = "coreml"
    ios: int = attrs.field(default=18, validator=check_ios)
    compute_units: str = attrs.field(default="cpu_only", validator=_one_of(COMPUTE_UNITS))
    quantize: str = attrs.field(default="none", validator=_one_of(COREML_QUANTIZE))

    def __attrs_post_init__(self) -> None:
        if self.quantize != "none" and self.ios < 18:
            raise option_error(
                self.name, "quantize", f"{self.quantize} (4-bit weights) needs ios=18 or later"
            )

    def unavailable_reason(self) -> str | None:
        return coreml_missing()

    def make_partitioner(self) -> Any:
        from executorch.extension.llm.export.partitioner_lib import get_coreml_partitioner

        return get_coreml_partitioner(
            self.ios,
            coreml_quantize=None if self.quantize == "none" else self.quantize,
            coreml_compute_units=self.compute_units,
        )
