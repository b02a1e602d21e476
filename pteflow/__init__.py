"""pteflow: a pass-manager compiler infrastructure for ExecuTorch.

Packages: ``pteflow.ir`` (levels, Program, facts, invariants, views),
``pteflow.passes`` (the Pass contract, the PassManager, the passes),
``pteflow.backends`` (per-target probes, quantizers, partitioners, pipelines),
``pteflow.driver`` (the ``driver`` command and the Python API), and ``pteflow.testing``.

The Python API (``pteflow.driver.api``; importing ``pteflow`` stays cheap, the API
loads on first use)::

    import pteflow

    result = pteflow.compile(pipeline="xnnpack_default", output="llama.pte")
    print(result.pte, result.verification.status)
    print(pteflow.plan(pipeline="xnnpack_default").render())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: name -> the module that defines it (loaded on first access)
_LAZY = {
    "compile": "pteflow.driver.api",
    "plan": "pteflow.driver.api",
    "bisect": "pteflow.driver.api",
    "check_coverage": "pteflow.driver.api",
    "CompileResult": "pteflow.driver.run",
    "RunOptions": "pteflow.driver.options",
    "PipelineOptions": "pteflow.driver.options",
    "ModelOptions": "pteflow.driver.options",
    "CacheOptions": "pteflow.driver.options",
    "DebugOptions": "pteflow.driver.options",
}

__all__ = [
    "CacheOptions",
    "CompileResult",
    "DebugOptions",
    "ModelOptions",
    "PipelineOptions",
    "RunOptions",
    "__version__",
    "bisect",
    "check_coverage",
    "compile",
    "plan",
]

if TYPE_CHECKING:
    from pteflow.driver.api import bisect, check_coverage, compile, plan
    from pteflow.driver.options import (
        CacheOptions,
        DebugOptions,
        ModelOptions,
        PipelineOptions,
        RunOptions,
    )
    from pteflow.driver.run import CompileResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pteflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
