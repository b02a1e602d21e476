"""Hashes of code: the installed versions of the libraries pteflow keys by version, and
the source of a user's or pteflow's own code (``source_hash``). Part of the cache keys
(``pteflow.ir.hashing`` re-exports them).

Importing this module does not import torch.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import os
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any

#: Packages keyed by their installed version rather than their source.
VERSIONED = ("torch", "executorch", "torchao", "pteflow")


class Unhashable(TypeError):
    """A value whose content cannot be hashed faithfully (so it must not be cached)."""


def _h() -> hashlib._Hash:
    return hashlib.sha256()


# --------------------------------------------------------------------------- versions


@functools.cache
def versions() -> tuple[tuple[str, str], ...]:
    """Installed versions of torch, executorch, torchao, pteflow (and Python)."""
    out = [("python", sys.version.split()[0])]
    for name in VERSIONED:
        try:
            out.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append((name, "absent"))
    return tuple(out)


# --------------------------------------------------------------------------- source


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]}
    roots |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    return tuple(sorted(os.path.realpath(r) + os.sep for r in roots if r))


def is_own_code(module: types.ModuleType) -> bool:
    """Code keyed by its source (not a library keyed by its version)."""
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return False
    real = os.path.realpath(file)
    return not real.startswith(_library_roots())


def _modules_reached(root: types.ModuleType) -> list[types.ModuleType]:
    """``root`` and the own-code modules reachable from it through module globals."""
    seen: dict[str, types.ModuleType] = {}
    todo = [root]
    while todo:
        mod = todo.pop()
        if mod.__name__ in seen:
            continue
        seen[mod.__name__] = mod
        for value in list(vars(mod).values()):
            if isinstance(value, types.ModuleType):
                target: types.ModuleType | None = value
            else:
                name = getattr(value, "__module__", None)
                target = sys.modules.get(name) if isinstance(name, str) else None
            if target is not None and target.__name__ not in seen and is_own_code(target):
                todo.append(target)
    return [seen[k] for k in sorted(seen)]


def _file_digest(path: str) -> str:
    # Read the file every time: a test (or an engineer in a notebook) may rewrite it
    # within one process, and linecache/inspect would serve the old text.
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise Unhashable(f"cannot read the source of {path}: {e}") from e
    return hashlib.sha256(data).hexdigest()


def source_hash(obj: Any) -> str:
    """Hash of the code ``obj`` (a class, function or module) runs.

    The module defining it and every own-code module it reaches through globals
    (helpers, base classes, pteflow's ir): editing any of them changes the hash.

    Raises:
        Unhashable: the code has no source file (defined in a REPL or built dynamically).
    """
    module = obj if isinstance(obj, types.ModuleType) else inspect.getmodule(obj)
    if module is None:
        raise Unhashable(f"{obj!r} has no module to read its source from")
    h = _h()
    mods = _modules_reached(module)
    if not is_own_code(module):
        file = getattr(module, "__file__", None)
        if not file:
            raise Unhashable(f"{module.__name__} has no source file")
    for mod in mods:
        file = getattr(mod, "__file__", None)
        if not file:
            continue
        h.update(mod.__name__.encode() + b"\0" + _file_digest(file).encode() + b"\0")
    return h.hexdigest()
