"""``--plugin MODULE|FILE.py``: load extra passes for one run (tests, experiments).

A plugin is a module, by import name or by path to a ``.py`` file; every Pass
class defined in it (with an ``info``) joins the registry, as if an installed
package had registered it under the ``pteflow.passes`` entry-point group.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from pteflow.ir.errors import UserError, describe
from pteflow.passes.base import Pass
from pteflow.passes.registry import _classes_in


def _import(spec: str) -> ModuleType:
    """The plugin module; its own code failing on import is a one-line UserError."""
    try:
        return _import_module(spec)
    except UserError:
        raise
    except ModuleNotFoundError as e:
        if e.name is not None and (
            spec == e.name or spec.startswith(e.name + ".")
        ):  # the plugin itself
            raise UserError(f"--plugin {spec}: cannot import it ({e})") from e
        raise UserError(f"--plugin {spec}: importing it failed: {describe(e)}") from e
    except SyntaxError as e:
        at = f"{Path(e.filename or spec).name} line {e.lineno}"
        raise UserError(f"--plugin {spec}: {at}: SyntaxError: {e.msg}") from e
    except (Exception, SystemExit) as e:
        raise UserError(f"--plugin {spec}: importing it failed: {describe(e)}") from e


def _import_module(spec: str) -> ModuleType:
    if spec.endswith(".py"):
        path = Path(spec).resolve()
        if path.is_dir():
            raise UserError(f"--plugin {spec}: is a directory; give the .py file")
        if not path.is_file():
            raise UserError(f"--plugin {spec}: no such file")
        name = f"pteflow_plugin_{path.stem}"
        if name in sys.modules:
            return sys.modules[name]
        mod_spec = importlib.util.spec_from_file_location(name, path)
        assert mod_spec and mod_spec.loader
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]  # a failed import is not cached as a half module
            raise
        return module
    if "" not in sys.path:  # as --model: a module in the working directory imports
        sys.path.insert(0, "")
    return importlib.import_module(spec)


def load_plugins(specs: Iterable[str]) -> list[type[Pass]]:
    """The Pass classes the plugin modules define.

    Raises:
        UserError: a plugin that cannot be imported or defines no pass.
    """
    found: list[type[Pass]] = []
    for spec in specs:
        classes = _classes_in(_import(spec))
        if not classes:
            raise UserError(f"--plugin {spec}: defines no pteflow Pass class (with an info)")
        found.extend(classes)
    return found


def absolute(specs: Iterable[str]) -> list[str]:
    """Plugin specs with file paths made absolute (for a reproducer run elsewhere)."""
    return [str(Path(s).resolve()) if s.endswith(".py") else s for s in specs]
