"""``--plugin MODULE|FILE.py``: load extra passes for one run (tests, experiments).

A plugin is a module, by import name or by path to a ``.py`` file; every Pass
class defined in it (with an ``info``) joins the registry, as if an installed
package had registered it under the ``pteflow.passes`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from pteflow.ir.errors import UserError
from pteflow.passes.base import Pass
from pteflow.passes.registry import classes_in

from .usercode import import_user_module


def _import(spec: str) -> ModuleType:
    """The plugin module; its own code failing on import is a one-line UserError."""
    return import_user_module(spec, f"--plugin {spec}", UserError, file_prefix="pteflow_plugin_")


def load_plugins(specs: Iterable[str]) -> list[type[Pass]]:
    """The Pass classes the plugin modules define.

    Raises:
        UserError: a plugin that cannot be imported or defines no pass.
    """
    found: list[type[Pass]] = []
    for spec in specs:
        classes = classes_in(_import(spec))
        if not classes:
            raise UserError(f"--plugin {spec}: defines no pteflow Pass class (with an info)")
        found.extend(classes)
    return found


def absolute(specs: Iterable[str]) -> list[str]:
    """Plugin specs with file paths made absolute (for a reproducer run elsewhere)."""
    return [str(Path(s).resolve()) if s.endswith(".py") else s for s in specs]
