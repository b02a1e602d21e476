"""What this process's ExecuTorch runtime can execute: its registered backends.

Two notions of "available" meet in every backend module: can pteflow *lower* to the backend
here (its ahead-of-time Python package imports), and can the ExecuTorch runtime of this
environment *execute* the result (the backend is registered in the runtime's C++ library).
This module answers the second, fast: ``executorch.runtime`` imports ``executorch.exir``
(seconds), but the registry lives in the pybindings extension, which loads alone in well
under a second. When ``executorch.runtime`` is already imported its answer is used.
"""

from __future__ import annotations

import functools


@functools.cache
def registered_backends() -> tuple[str, ...] | str:
    """Names of the backends registered in the runtime, or why the runtime cannot load."""
    from pteflow.ir.runnable import registered_backends as registered

    try:
        return tuple(sorted(registered()))
    except ImportError as e:
        return f"the ExecuTorch runtime cannot be imported: {e}"


def runtime_missing(backend_id: str, where: str) -> str | None:
    """Why the runtime here cannot execute ``backend_id`` delegates, or None.

    ``where``: how to run such a ``.pte`` instead (e.g. "run the .pte on macOS/iOS").
    """
    names = registered_backends()
    if isinstance(names, str):
        return names
    if backend_id in names:
        return None
    have = ", ".join(names) or "none"
    return f"the runtime here has no {backend_id} (registered: {have}); {where}"
