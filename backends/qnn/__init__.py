"""QNN: Qualcomm's AI Engine Direct delegate (Snapdragon HTP), through ExecuTorch 1.5.1.

What it contributes:

* an availability probe, ``unavailable_reason()``: ``QNN_SDK_ROOT`` must name an SDK whose
  ``lib/x86_64-linux-clang/libQnnHtp.so`` loads in a child process (no network, no torch
  import, no SDK library loaded here). ExecuTorch itself would download the SDK when
  ``QNN_SDK_ROOT`` is unset; pteflow never lets it (see ``pteflow.backends.qnn.sdk``);
  ``sdk_summary()`` / ``sdk_warning()``: its build id, and one line when it is not the QNN
  version this ExecuTorch was built for (2.37.0 for 1.5.1);
* its quantizer, ``make_quantizer()``: ``QnnQuantizer`` as export_llama builds it for
  ``qnn-16a4w`` (default), ``qnn-8a8w`` and ``qnn-16a16w``, for the pt2e passes;
* compile specs and the partitioner, ``compile_specs()`` / ``partitioner()`` (SoC option,
  default SM8650), and the ``partition-qnn`` pass;
* its source passes (export_llama's ``--qnn -kv`` transforms: simple KV cache, additive
  causal mask, flex SDPA, linear -> 1x1 conv2d; and pteflow's ``split-mha-to-sha``) and its
  edge passes (QNN's to-edge table, ``pteflow.backends.qnn.qnn_edge_passes``);
* ``coverage()``: which ops of an edge program QNN has an op builder for, without the SDK.

Named pipeline: ``qnn_default``. ``--no-delegate`` drops ``partition-qnn`` and every pass
marked ``delegation = "qnn"`` (``policy.Delegating``); what stays writes a portable
``.pte`` of the QNN-prepared, QNN-quantized graph (it needs
``executorch.kernels.quantized`` registered to convert and to load: the quantize/dequantize
kernels live there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import sdk
from .op_coverage import (
    BUILDER,
    FALLBACK,
    GAPS,
    NO_BUILDER,
    NOT_IMPLEMENTED,
    PASS_THROUGH,
    SKIPPED,
    UNSUPPORTED,
    Coverage,
    NodeCoverage,
    coverage,
)
from .quantizer import DEFAULT_QNN_QUANTIZER, QNN_QUANTIZERS, make_qnn_quantizer
from .sdk import DEFAULT_SOC, disable_sdk_download, soc_names
from .sdk import unavailable_reason as _sdk_unavailable_reason

if TYPE_CHECKING:
    from pteflow.passes import Pass

    from .partition_qnn import PartitionQnnPass

BACKEND_ID = "QnnBackend"
DEFAULT_PIPELINE = "qnn_default"

__all__ = [
    "BACKEND_ID",
    "BUILDER",
    "DEFAULT_PIPELINE",
    "DEFAULT_QNN_QUANTIZER",
    "DEFAULT_SOC",
    "FALLBACK",
    "GAPS",
    "NOT_IMPLEMENTED",
    "NO_BUILDER",
    "PASS_THROUGH",
    "QNN_QUANTIZERS",
    "SKIPPED",
    "UNSUPPORTED",
    "Coverage",
    "NodeCoverage",
    "compile_specs",
    "coverage",
    "disable_sdk_download",
    "edge_passes",
    "make_quantizer",
    "partition_pass",
    "partitioner",
    "runtime_unavailable_reason",
    "sdk_summary",
    "sdk_warning",
    "soc_names",
    "source_passes",
    "unavailable_reason",
]


def unavailable_reason() -> str | None:
    """Why QNN lowering cannot run here (names QNN_SDK_ROOT or libQnnHtp.so), or None."""
    return _sdk_unavailable_reason()


def sdk_summary() -> str | None:
    """``QNN SDK <build id>`` for ``driver list backends``, or None without a usable SDK."""
    build_id = sdk.sdk_build_id()
    return f"QNN SDK {build_id}" if build_id else None


def sdk_warning() -> str | None:
    """One line when the SDK is not the QNN version this ExecuTorch was built for."""
    return sdk.version_warning(sdk.sdk_build_id())


def runtime_unavailable_reason() -> str | None:
    """Why a QNN-delegated ``.pte`` cannot execute in this process's ExecuTorch runtime.

    The runtime must have ``QnnBackend`` registered and the SDK's HTP library loadable
    (on x86_64 that is the HTP simulator).
    """
    from ..runtime import runtime_missing

    return _sdk_unavailable_reason() or runtime_missing(
        BACKEND_ID, "run the .pte on a Snapdragon device with the QNN runtime libraries"
    )


def make_quantizer(name: str = DEFAULT_QNN_QUANTIZER, *, soc: str = DEFAULT_SOC) -> Any:
    """``QnnQuantizer`` for ``qnn-16a4w`` (default), ``qnn-8a8w`` or ``qnn-16a16w``.

    Never downloads the SDK; without one the SDK's op-constraint checks are skipped.
    """
    return make_qnn_quantizer(name, soc=soc)


def partition_pass(*, soc: str = DEFAULT_SOC, use_fp16: bool = False) -> PartitionQnnPass:
    """The ``partition-qnn`` pass (SoC default SM8650; quantized HTP unless ``use_fp16``)."""
    from .partition_qnn import PartitionQnnPass

    return PartitionQnnPass(soc=soc, use_fp16=use_fp16)


def compile_specs(*, soc: str = DEFAULT_SOC, use_fp16: bool = False) -> list[Any]:
    """QNN compile specs for the HTP backend on ``soc`` (building them needs no SDK)."""
    return partition_pass(soc=soc, use_fp16=use_fp16).compile_specs()


def partitioner(*, soc: str = DEFAULT_SOC, use_fp16: bool = False) -> Any:
    """export_llama's ``QnnPartitioner`` (partitioning itself needs the SDK)."""
    return partition_pass(soc=soc, use_fp16=use_fp16).qnn_partitioner()


def source_passes(*, sha: bool = False, mask_value: float = -255.0) -> list[Pass]:
    """export_llama's ``--qnn -kv`` source transforms; ``sha`` splits attention per head.

    Without ``sha``: simple KV cache, additive causal mask, flex SDPA, linear -> conv2d.
    With ``sha`` (export_llama's ``--use_qnn_sha``): split-mha-to-sha, the mask, conv2d.
    """
    from .qnn_convert_linear_to_conv2d import (
        QnnConvertLinearToConv2dPass,
    )
    from .qnn_replace_causal_mask import QnnReplaceCausalMaskPass
    from .qnn_replace_kv_cache_with_simple import (
        QnnReplaceKvCacheWithSimplePass,
    )
    from .qnn_replace_sdpa_with_flex import QnnReplaceSdpaWithFlexPass
    from .split_mha_to_sha import SplitMhaToShaPass

    attention: list[Pass] = (
        [SplitMhaToShaPass()]
        if sha
        else [QnnReplaceKvCacheWithSimplePass(), QnnReplaceSdpaWithFlexPass()]
    )
    return [
        *attention,
        QnnReplaceCausalMaskPass(mask_value=mask_value),
        QnnConvertLinearToConv2dPass(),
    ]


def edge_passes(names: Sequence[str] | None = None) -> list[Pass]:
    """QNN's edge passes by upstream class name; default: the set export_llama runs."""
    from . import qnn_edge_passes

    return list(qnn_edge_passes.passes(tuple(names or qnn_edge_passes.EXPORT_LLAMA_SET)))
