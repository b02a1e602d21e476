"""A dynamic dimension named as plain data, made into torch's when first read.

``torch.export.Dim`` imports sympy for its bounds (0.6 s): a model source that names
its dynamic dimensions with it pays that on a warm run that never exports. A ``Dim``
here is the same description (name and bounds) as plain data. A ``Program`` given
dynamic shapes holding one keeps them as ``DeferredShapes``: a mapping whose methods
are known at once and whose values are made, on first read, with every ``Dim`` turned
into ``torch.export.Dim`` (one per name). So whoever reads ``program.dynamic_shapes``
(the export pass, any plugin pass handing them to ``torch.export`` itself) gets torch's,
and the cache's key, which reads only their text, never makes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs


@attrs.frozen(repr=False)
class Dim:
    """``torch.export.Dim(name, min=min, max=max)``, made only when read."""

    name: str
    min: int | None = None
    max: int | None = None

    def __repr__(self) -> str:
        # torch.export.Dim's own (Dim._readable), so a program's cache key reads alike
        low = None if self.min == 2 else (0 if self.min is None else self.min)
        bounds = [f"min={low}"] if low is not None else []
        bounds += [f"max={self.max}"] if self.max is not None else []
        return f"Dim({', '.join([repr(self.name), *bounds])})"


class DeferredShapes(Mapping[str, Any]):
    """Dynamic shapes per method holding ``Dim``s: torch's made on the first read of a
    value (``text`` and the method names need none)."""

    def __init__(self, shapes: Mapping[str, Any]):
        self._plain = dict(shapes)
        self._made: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """What ``repr`` of the made shapes, sorted by method, reads (the cache key's)."""
        return repr(dict(sorted(self._plain.items())))

    @property
    def made(self) -> bool:
        return self._made is not None

    def __getitem__(self, method: str) -> Any:
        if self._made is None:
            self._made = torch_dynamic_shapes(self._plain)
        return self._made[method]

    def __iter__(self) -> Iterator[str]:
        return iter(self._plain)

    def __len__(self) -> int:
        return len(self._plain)

    def __repr__(self) -> str:
        return f"DeferredShapes({self.text})"

    def __getstate__(self) -> dict[str, Any]:
        return {"_plain": self._plain, "_made": None}  # torch's are made again


def holds_dim(value: Any) -> bool:
    """Whether ``value`` (dynamic shapes: dicts, lists, tuples) holds a ``Dim``."""
    if isinstance(value, Dim):
        return True
    if isinstance(value, Mapping):
        return any(holds_dim(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(holds_dim(v) for v in value)
    return False


def torch_dynamic_shapes(shapes: Any) -> Any:
    """``shapes`` with every ``Dim`` replaced by its ``torch.export.Dim`` (one per name,
    so a dimension shared between inputs stays one dimension)."""
    made: dict[Dim, Any] = {}

    def convert(value: Any) -> Any:
        if isinstance(value, Dim):
            if value not in made:
                import torch

                bounds = {
                    k: v for k, v in (("min", value.min), ("max", value.max)) if v is not None
                }
                made[value] = torch.export.Dim(value.name, **bounds)
            return made[value]
        if isinstance(value, Mapping):  # what ``holds_dim`` looks into, this converts
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(convert(v) for v in value)
        return value

    return convert(shapes)
