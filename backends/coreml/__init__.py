"""CoreML: Apple's Core ML delegate (CPU, GPU and Neural Engine on macOS/iOS).

What it contributes:

* ``unavailable_reason()``: can pteflow *lower* to CoreML here (coremltools and ExecuTorch's
  CoreML partitioner importable; both work on Linux);
  ``runtime_unavailable_reason()``: can this process's ExecuTorch runtime *execute* a
  CoreML ``.pte`` (only runtimes built for macOS/iOS register ``CoreMLBackend``);
* its source passes (export_llama's ``--coreml -kv`` transforms: ``coreml-replace-sdpa``
  with the ``ios`` option, iOS 18's fused SDPA from 18 on, then ``coreml-replace-kv-cache``);
* its partition pass ``partition-coreml`` (``ios``, ``compute_units``, ``quantize`` =
  export_llama's ``--coreml-quantize`` b4w/c4w weight compression) and the partitioner;
* its pt2e quantizer, ``make_quantizer()`` (export_llama's ``coreml_*`` pt2e modes);
  pteflow's ``pt2e-prepare`` pass does not offer it by name yet.

Named pipeline: ``coreml_default``. ``--verify`` on a host without a CoreML runtime is
skipped with the reason (run the ``.pte`` with ExecuTorch's runner on a Mac to verify).
"""

from __future__ import annotations

from typing import Any

BACKEND_ID = "CoreMLBackend"
DEFAULT_PIPELINE = "coreml_default"
EXECUTE_ELSEWHERE = "to verify, run the .pte with ExecuTorch's runner on macOS/iOS (a Mac)"
#: export_llama's --pt2e_quantize modes for CoreML (extension/llm/export/quantizer_lib.py)
PT2E_QUANTIZERS = (
    "coreml_c4w",
    "coreml_8a_c8w",
    "coreml_8a_c4w",
    "coreml_baseline_8a_c8w",
    "coreml_baseline_8a_c4w",
)


def unavailable_reason() -> str | None:
    """Why CoreML lowering cannot run here, or None. No imports (find_spec only)."""
    from .partition_coreml import coreml_missing

    return coreml_missing()


def runtime_unavailable_reason() -> str | None:
    """Why a CoreML-delegated ``.pte`` cannot execute in this process's runtime, or None."""
    from ..runtime import runtime_missing

    return runtime_missing(BACKEND_ID, EXECUTE_ELSEWHERE)


def source_passes(*, ios: int = 18) -> list[Any]:
    """export_llama's ``--coreml -kv`` source transforms for deployment target ``ios``."""
    from .coreml_replace_kv_cache import CoremlReplaceKvCachePass
    from .coreml_replace_sdpa import CoremlReplaceSdpaPass

    return [CoremlReplaceSdpaPass(ios=ios), CoremlReplaceKvCachePass()]


def partition_pass(
    *, ios: int = 18, compute_units: str = "cpu_only", quantize: str = "none"
) -> Any:
    """The ``partition-coreml`` pass."""
    from .partition_coreml import PartitionCoremlPass

    return PartitionCoremlPass(ios=ios, compute_units=compute_units, quantize=quantize)


def partitioner(**options: Any) -> Any:
    """export_llama's ``CoreMLPartitioner`` (same options as ``partition_pass``)."""
    return partition_pass(**options).make_partitioner()


def make_quantizer(name: str = "coreml_8a_c8w") -> Any:
    """``CoreMLQuantizer`` as export_llama builds it for ``--pt2e_quantize NAME``.

    ExecuTorch 1.5.1 raises NotImplementedError for ``coreml_c4w`` ("4-bit Core ML
    quantizer is still under development"); for 4-bit weights use ``partition-coreml``'s
    ``quantize = "c4w"`` (coremltools compression at lowering) instead.
    """
    from pteflow.ir.errors import UnknownNameError

    if name not in PT2E_QUANTIZERS:
        raise UnknownNameError("CoreML quantizer", name, PT2E_QUANTIZERS)
    from executorch.extension.llm.export.quantizer_lib import get_coreml_quantizer

    return get_coreml_quantizer(name)
