"""The tree's layout rules: each backend is one package, and imports follow the layers.

* the passes of a backend, and its named pipelines, live in ``pteflow.backends.<name>``;
* nothing under ``ir/`` or ``passes/`` imports a backend (driver -> backends -> passes -> ir);
* no module imports another package's private (``_``-prefixed) module;
* no backend package imports another backend package (what two backends share is
  backend-neutral: ``pteflow.ir.facts``, ``pteflow.passes``);
* every package on disk is in pyproject's package list, and its pipelines ship with it.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from pteflow.driver import pipelines
from pteflow.passes import registry
from pteflow.passes.quantize import pt2e

ROOT = Path(__file__).resolve().parents[2]
#: top-level folder -> the package it installs as (pyproject's package-dir)
LAYERS = {"ir": "pteflow.ir", "passes": "pteflow.passes", "backends": "pteflow.backends"}
LAYERS |= {"driver": "pteflow.driver", "pteflow": "pteflow"}
BACKENDS = ("coreml", "mps", "portable", "qnn", "vulkan", "xnnpack")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every source module of pteflow."""
    out = {}
    for folder, package in LAYERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


def _imports(name: str, path: Path) -> list[str]:
    """Every module ``path`` imports (absolute names; ``from X import y`` gives X.y too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return [m for m in found if m.startswith("pteflow")]


def _owner(module: str) -> str:
    """The package a module belongs to: a backend package, or a top-level layer."""
    parts = module.split(".")
    if parts[:2] == ["pteflow", "backends"] and len(parts) > 2 and parts[2] in BACKENDS:
        return ".".join(parts[:3])
    return ".".join(parts[:2])


MODULES = _modules()


def test_ir_and_passes_import_no_backend():
    bad = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if name.startswith(("pteflow.ir", "pteflow.passes"))
        for imported in _imports(name, path)
        if imported.startswith("pteflow.backends") or imported.startswith("pteflow.driver")
    ]
    assert not bad


def test_no_module_imports_another_packages_private_module():
    bad = []
    for name, path in MODULES.items():
        for imported in _imports(name, path):
            if imported not in MODULES:
                continue  # a name inside a module, not a module
            private = any(p.startswith("_") and p != "__init__" for p in imported.split(".")[1:])
            if private and _owner(imported) != _owner(name):
                bad.append(f"{name} imports {imported}")
    assert not bad


def test_no_backend_imports_another_backend():
    bad = [
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if _owner(name).startswith("pteflow.backends.")
        for imported in _imports(name, path)
        if _owner(imported).startswith("pteflow.backends.") and _owner(imported) != _owner(name)
    ]
    assert not bad


def test_backend_passes_live_in_their_backend_package():
    found = registry.load_registry(entry_points=False)
    for name, cls in found.items():
        for backend in BACKENDS:
            if name.startswith(f"{backend}-") or name.startswith(f"partition-{backend}"):
                assert cls.__module__.startswith(f"pteflow.backends.{backend}."), (name, cls)
    assert found["convert-to-linear"].__module__ == "pteflow.backends.xnnpack.convert_to_linear"
    assert found["split-mha-to-sha"].__module__ == "pteflow.backends.qnn.split_mha_to_sha"
    neutral = [c.__module__ for c in found.values() if c.__module__.startswith("pteflow.passes")]
    assert "pteflow.passes.convert.to_edge" in neutral


def test_every_named_pipeline_ships_with_its_backend():
    files = pipelines._named_files()
    assert set(files) == set(pipelines.named_pipelines())
    for name, entry in files.items():
        backend = name.split("_", 1)[0]
        assert backend in BACKENDS, name
        assert (ROOT / "backends" / backend / "pipelines" / f"{name}.toml").is_file()
        assert Path(str(entry)).parent.parent.name == backend


def test_pt2e_quantizers_are_the_ones_their_backends_build():
    import importlib

    by_backend: dict[str, list[str]] = {}
    for name in pt2e.QUANTIZERS:
        by_backend.setdefault(name.split("-", 1)[0], []).append(name)
    for backend, names in by_backend.items():
        module = importlib.import_module(f"pteflow.backends.{backend}.quantizer")
        assert tuple(names) == tuple(module.PT2E_QUANTIZERS)
    with pytest.raises(ValueError, match="unknown quantizer"):
        pt2e.make_quantizer("coreml_8a_c8w")


def test_pyproject_lists_every_package_and_ships_the_pipelines():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    on_disk = {n for n, p in MODULES.items() if p.name == "__init__.py"}
    assert on_disk == packages
    data = config["package-data"]["pteflow.backends"]
    shipped = {p for pattern in data for p in (ROOT / "backends").glob(pattern)}
    assert shipped == set((ROOT / "backends").glob("*/pipelines/*.toml"))
    assert len(shipped) == len(pipelines.named_pipelines())
