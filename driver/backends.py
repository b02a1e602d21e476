"""The backend table ``driver list backends`` prints."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def backend_status(module: object) -> str:
    """'available', 'unavailable: why', or 'lowers here; cannot execute here: why'.

    Two questions per backend: can pteflow lower to it here (``unavailable_reason``), and
    can this process's ExecuTorch runtime execute the result (``runtime_unavailable_reason``,
    when the backend module has one).

    A backend module's ``sdk_summary()``, when it has one, is appended (e.g. the QNN SDK's
    build id).
    """
    reason = module.unavailable_reason()  # type: ignore[attr-defined]
    if reason:
        return f"unavailable: {reason}"
    runtime = getattr(module, "runtime_unavailable_reason", None)
    why = runtime() if runtime is not None else None
    status = f"lowers here; cannot execute here: {why}" if why else "available"
    summary = getattr(module, "sdk_summary", None)
    sdk = summary() if summary is not None else None
    return f"{status}; {sdk}" if sdk else status


def backend_warnings() -> list[str]:
    """One line per backend whose SDK needs a warning (``sdk_warning()``), e.g. QNN's version."""
    out = []
    for name, module in backend_modules().items():
        warning = getattr(module, "sdk_warning", None)
        line = warning() if warning is not None else None
        if line:
            out.append(f"{name}: {line}")
    return out


def backend_modules() -> dict[str, Any]:
    """Name -> package of every backend (``pteflow.backends.<name>`` with a probe)."""
    import pteflow.backends as pkg

    out = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or not info.ispkg:
            continue
        module = importlib.import_module(f"pteflow.backends.{info.name}")
        if getattr(module, "unavailable_reason", None) is not None:
            out[info.name] = module
    return out


def backend_table() -> list[tuple[str, str]]:
    """(name, status) for every backend module; see ``backend_status``."""
    return [(name, backend_status(module)) for name, module in backend_modules().items()]
