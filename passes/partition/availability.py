"""Is a backend's ahead-of-time package here? Answered from the file system, fast.

``importlib.util.find_spec("a.b.c")`` imports ``a.b`` first, and some ExecuTorch backend
packages import torch and their whole op registry in ``__init__`` (Vulkan's takes 20 s):
too slow for ``driver list backends`` and for the manager's check before any work. So only
the top-level package is located with ``find_spec``; the rest of the dotted path is looked
up on disk below it (a module file, a package, or an extension module).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _exists(module: str) -> bool:
    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ModuleNotFoundError, ValueError):
        return False
    if spec is None:
        return False
    if not rest:
        return True
    parts = rest.split(".")
    for location in spec.submodule_search_locations or ():
        base = Path(location).joinpath(*parts)
        if (base / "__init__.py").is_file() or base.with_suffix(".py").is_file():
            return True
        if base.parent.is_dir() and any(base.parent.glob(f"{base.name}.*.so")):
            return True
    return False


def missing_modules(*modules: str) -> list[str]:
    """The modules of ``modules`` that are not installed (no imports below the top level)."""
    return [m for m in modules if not _exists(m)]
