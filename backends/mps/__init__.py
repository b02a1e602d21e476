"""MPS: Apple's Metal Performance Shaders delegate, which ExecuTorch 1.5.1 does not ship.

``executorch.backends.apple.mps`` is gone from ExecuTorch; for Apple GPUs and the Neural
Engine use CoreML (``coreml_default``). The named pipeline ``mps_default`` exists so that
asking for it fails before any work (exit 2) with that explanation.
"""

from __future__ import annotations

BACKEND_ID = "MPSBackend"
DEFAULT_PIPELINE = "mps_default"


def unavailable_reason() -> str | None:
    """Why MPS lowering cannot run here (ExecuTorch has no MPS backend), or None."""
    from .partition_mps import mps_missing

    return mps_missing()


def runtime_unavailable_reason() -> str | None:
    """Why an MPS ``.pte`` cannot execute in this process's runtime, or None."""
    from ..runtime import runtime_missing

    return runtime_missing(BACKEND_ID, "use coreml_default for Apple GPUs/ANE")
