"""The backend table ``driver list backends`` prints."""

from __future__ import annotations

import importlib
import pkgutil


def backend_table() -> list[tuple[str, str]]:
    """(name, 'available' or 'unavailable: reason') for every backend module."""
    import pteflow.backends as pkg

    rows = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.ispkg:
            continue
        module = importlib.import_module(f"pteflow.backends.{info.name}")
        probe = getattr(module, "unavailable_reason", None)
        if probe is None:
            continue
        reason = probe()
        rows.append((info.name, "available" if not reason else f"unavailable: {reason}"))
    return rows
