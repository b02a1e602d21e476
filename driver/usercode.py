"""Importing the user's code (``--model``, ``--plugin``): its failures as one-line errors.

A module given by import name or as a path to a ``.py`` file. Whatever its own code does
on import (raise, ``sys.exit``, a syntax error, a missing import of its own) becomes the
caller's ``UserError`` subclass with the exception's type and first line; ``--debug``
shows the original traceback (it is the error's ``__cause__``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from pteflow.ir.errors import UserError, describe


def import_user_module(
    target: str, where: str, error: type[UserError], *, file_prefix: str = ""
) -> ModuleType:
    """Import ``target`` (a module name, or a path ending in ``.py``).

    A file is imported as ``file_prefix + its stem`` (reused if already imported under
    that name); a module name is looked up from the working directory too.

    Raises:
        error: the module cannot be found, or its code fails on import.
    """
    try:
        if target.endswith(".py"):
            return _import_file(Path(target), where, error, file_prefix)
        if "" not in sys.path:  # a module in the working directory imports
            sys.path.insert(0, "")
        return importlib.import_module(target)
    except UserError:
        raise
    except ModuleNotFoundError as e:
        if e.name is not None and (target == e.name or target.startswith(e.name + ".")):
            raise error(f"{where}: cannot import {target!r} ({e})") from e  # the module itself
        raise error(f"{where}: importing it failed: {describe(e)}") from e
    except SyntaxError as e:
        at = f"{Path(e.filename or target).name} line {e.lineno}"
        raise error(f"{where}: {at}: SyntaxError: {e.msg}") from e
    except (Exception, SystemExit) as e:  # the user's module code, run on import
        raise error(f"{where}: importing it failed: {describe(e)}") from e


def _import_file(path: Path, where: str, error: type[UserError], prefix: str) -> ModuleType:
    if path.is_dir():
        raise error(f"{where}: {path} is a directory; give the .py file")
    if not path.is_file():
        raise error(f"{where}: no such file {path}")
    name = prefix + path.stem
    if prefix and name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)  # a failed import is not cached as a half module
        raise
    return module
