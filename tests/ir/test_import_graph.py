"""ir/ has no import cycle, counting the imports inside functions too.

A function-level import only defers a cycle (``facts -> views -> facts``): the modules
still cannot be understood, tested or moved one without the other. Imports under
``if TYPE_CHECKING:`` are for annotations only and do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

IR = Path(__file__).resolve().parents[2] / "ir"


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _ir_imports(path: Path) -> set[str]:
    """The ir modules ``path`` imports anywhere except under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import errors, facts
                found.update(a.name for a in node.names)
            elif node.level == 0 and (node.module or "").startswith("pteflow.ir."):
                found.add(node.module.split(".")[2])  # type: ignore[union-attr]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pteflow.ir."):
                    found.add(alias.name.split(".")[2])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def _graph() -> nx.DiGraph:
    modules = {p.stem for p in IR.glob("*.py") if p.stem != "__init__"}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name in modules:
        for target in _ir_imports(IR / f"{name}.py") & modules:
            if target != name:
                graph.add_edge(name, target)
    return graph


def test_ir_import_graph_is_acyclic():
    graph = _graph()
    assert graph.number_of_edges() > 5  # the scan sees the imports at all
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, "import cycles in ir/: " + "; ".join(
        " -> ".join([*c, c[0]]) for c in sorted(cycles)
    )


@pytest.mark.parametrize("module", sorted(p.stem for p in IR.glob("*.py")))
def test_each_ir_module_imports_first_in_a_fresh_interpreter(module):
    name = "pteflow.ir" if module == "__init__" else f"pteflow.ir.{module}"
    code = f"import {name}; import sys; assert 'torch' not in sys.modules, 'imports torch'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
