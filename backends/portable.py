"""Portable: no delegation; every op runs on ExecuTorch's portable (or optimized) kernels.

It contributes only an availability probe: the kernels ship in every ExecuTorch runtime.
Named pipeline: ``portable_default``.
"""

from __future__ import annotations

DEFAULT_PIPELINE = "portable_default"


def unavailable_reason() -> str | None:
    """Why the portable flow cannot run here (ExecuTorch missing), or None."""
    import importlib.util

    for module in ("executorch.exir", "executorch.runtime"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"{module} is not installed (pip install executorch)"
    return None
