"""Finding passes: the built-in ones, and those other packages ship.

Built-in passes are the ``Pass`` subclasses with an ``info`` defined in the
modules under ``pteflow.passes.<group>`` (backend-neutral) and in the modules of
each backend package ``pteflow.backends.<name>`` (found by name: nothing here
imports a backend; modules whose name starts with ``_`` are skipped). Other packages register theirs
through the ``pteflow.passes`` entry-point group; an entry point names a
Pass class or a module whose Pass classes are taken. Two passes with one
name are an error naming both sources, never a silent override.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from collections.abc import Iterable, Mapping
from importlib import metadata
from types import ModuleType
from typing import Any

import attrs

from pteflow.ir import Fact
from pteflow.ir.errors import ConflictError, UnknownNameError

from .base import Pass

ENTRY_POINT_GROUP = "pteflow.passes"
GROUPS = ("convert", "source", "quantize", "aten", "edge", "partition", "post", "emit")
#: The package whose subpackages are backends (one per target, each with its passes).
BACKENDS_PACKAGE = "pteflow.backends"


def classes_in(module: ModuleType) -> list[type[Pass]]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Pass) and "info" in vars(obj) and obj.__module__ == module.__name__
    ]


def backend_packages() -> list[str]:
    """Names of the backend packages (``pteflow.backends.<name>``), sorted."""
    package = importlib.import_module(BACKENDS_PACKAGE)
    return [
        f"{BACKENDS_PACKAGE}.{info.name}"
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name)
        if info.ispkg and not info.name.startswith("_")
    ]


def _public_modules(package_name: str) -> Iterable[ModuleType]:
    package = importlib.import_module(package_name)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.name.startswith("_") and not info.ispkg:
            yield importlib.import_module(f"{package_name}.{info.name}")


def builtin_modules() -> Iterable[ModuleType]:
    """The modules built-in passes live in: the groups, then each backend package."""
    for group in GROUPS:
        yield from _public_modules(f"{__package__}.{group}")
    for backend in backend_packages():
        yield from _public_modules(backend)


def _add(
    registry: dict[str, type[Pass]], sources: dict[str, str], cls: type[Pass], source: str
) -> None:
    name = cls.info.name
    if name in registry and registry[name] is not cls:
        raise ConflictError(
            f"pass name {name!r} is defined twice: by {sources[name]} and by "
            f"{source}; rename one of them"
        )
    registry[name] = cls
    sources[name] = source


def load_registry(
    *, entry_points: bool = True, extra: Iterable[type[Pass]] = ()
) -> dict[str, type[Pass]]:
    """Every known pass class by name.

    Raises:
        ConflictError: two passes share a name (both sources are named).
    """
    registry: dict[str, type[Pass]] = {}
    sources: dict[str, str] = {}
    for module in builtin_modules():
        for cls in classes_in(module):
            _add(registry, sources, cls, f"{cls.__module__}.{cls.__qualname__} (built-in)")
    if entry_points:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            obj = ep.load()
            found = classes_in(obj) if inspect.ismodule(obj) else [obj]
            dist = getattr(ep, "dist", None)
            where = f"entry point {ep.name!r} = {ep.value}" + (
                f" (package {dist.name})" if dist is not None else ""
            )
            for cls in found:
                if not (inspect.isclass(cls) and issubclass(cls, Pass) and "info" in vars(cls)):
                    raise ConflictError(
                        f"{where} does not name a pteflow Pass class or a module of them"
                    )
                _add(registry, sources, cls, where)
    for cls in extra:
        _add(registry, sources, cls, f"{cls.__module__}.{cls.__qualname__}")
    return registry


def lookup(registry: dict[str, type[Pass]], name: str) -> type[Pass]:
    """The pass class called ``name``; UnknownNameError lists the closest names."""
    try:
        return registry[name]
    except KeyError:
        raise UnknownNameError("pass", name, registry, see="driver list passes") from None


def providers(registry: Mapping[str, type[Pass]], fact: Fact) -> list[str]:
    """Pass specs (as ``--passes`` reads them) that provide ``fact``.

    A pass's contract may depend on its options (``to-edge{check_ir_validity=false}``
    provides ``edge.ir-relaxed``): besides the defaults, each bool option flipped
    and each value of a ``Literal`` option is tried, one option at a time.
    """
    found = []
    for name, cls in sorted(registry.items()):
        try:
            default = cls()
        except Exception:  # a pass without defaults for every option: its class contract
            if fact in cls.info.provides:
                found.append(name)
            continue
        if fact in default.contract.provides:
            found.append(name)
            continue
        for option, value in _variants(cls, default):
            try:
                variant = attrs.evolve(default, **{option: value})
            except Exception:
                continue
            if fact in variant.contract.provides:
                shown = str(value).lower() if isinstance(value, bool) else value
                found.append(f"{name}{{{option}={shown}}}")
                break
    return found


def _variants(cls: type[Pass], default: Pass) -> Iterable[tuple[str, Any]]:
    try:
        attrs.resolve_types(cls)
    except Exception:
        return
    for field in attrs.fields(cls):
        current = getattr(default, field.name)
        if field.type is bool:
            yield field.name, not current
        elif typing.get_origin(field.type) is typing.Literal:
            for value in typing.get_args(field.type):
                if value != current:
                    yield field.name, value
