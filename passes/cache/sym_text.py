"""Symbolic sizes printed once per expression while the cache serializes a graph.

serde writes every symbolic size as text (``str(SymInt)`` -> ``SymNode.str`` ->
``f"{self.expr}"``): sympy's printer, and the ``expr`` property's own ``is_number`` walk,
for each of the thousands of sizes in a graph that name a handful of expressions (half of
an EXECUTORCH entry's serialization at stories). While ``printed_once()`` is active,
``SymNode.str`` answers from a table keyed by what ``expr`` depends on (the node's raw
expression, its ShapeEnv and that ShapeEnv's replacements version), so the text is the
same as upstream's, computed once per expression.

The same for the programs' symbol ranges: executorch's serde writes the whole model's
range constraints again for every delegate's original program (26 programs at stories,
each bound compared with sympy's infinities), a tenth of an EXECUTORCH entry. While
``printed_once()`` is active, each (symbol, lower, upper) is converted once, by
upstream's ``serialize_range_constraints`` itself.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from pteflow.ir.replaced import replaced


@contextlib.contextmanager
def printed_once() -> Iterator[None]:
    """While inside, ``SymNode.str`` remembers its text per expression (this block only)."""
    from torch.fx.experimental.sym_node import SymNode

    upstream = SymNode.str
    table: dict[Any, str] = {}

    def remembered(self: Any) -> str:
        env = self.shape_env
        try:
            key = (id(env), getattr(env, "_replacements_version_counter", None), self._expr)
            text = table.get(key)
        except TypeError:  # an unhashable expression: upstream's way
            return upstream(self)
        if text is None:
            text = table[key] = upstream(self)
        return text

    with replaced(SymNode, "str", remembered), _ranges_converted_once():
        yield


@contextlib.contextmanager
def _ranges_converted_once() -> Iterator[None]:
    """executorch serde's ``serialize_range_constraints``, one symbol's range at a time,
    each remembered (this block only)."""
    if "executorch.exir" not in sys.modules:  # no executorch program here (nor imports)
        yield
        return
    from executorch.exir.serde import export_serialize

    upstream = export_serialize.serialize_range_constraints
    table: dict[Any, dict[str, Any]] = {}

    def remembered(range_constraints: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for symbol, bounds in range_constraints.items():
            try:
                key = (symbol, bounds.lower, bounds.upper)
                one = table.get(key)
            except TypeError:  # unhashable: upstream's way
                one = None
                key = None
            if one is None:
                one = upstream({symbol: bounds})
                if key is not None:
                    table[key] = one
            out.update(one)
        return out

    with replaced(export_serialize, "serialize_range_constraints", remembered):
        yield
