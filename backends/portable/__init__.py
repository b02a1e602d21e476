"""Portable: no delegation; every op runs on ExecuTorch's portable (or optimized) kernels.

It contributes only an availability probe: the kernels ship in every ExecuTorch runtime.
Named pipeline: ``portable_default``.
"""

from __future__ import annotations

DEFAULT_PIPELINE = "portable_default"


def unavailable_reason() -> str | None:
    """Why the portable flow cannot run here (ExecuTorch missing), or None."""
    from pteflow.passes.partition.availability import missing_modules

    gone = missing_modules("executorch.exir", "executorch.runtime")
    return f"{gone[0]} is not installed (pip install executorch)" if gone else None
