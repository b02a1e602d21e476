"""A dynamic dimension named as plain data: no sympy until the program is exported.

``torch.export.Dim`` imports sympy for its bounds (0.6 s): a model source that
names its dynamic dimensions with it pays that on a warm run that never exports. A
``Dim`` here is the same description (name and bounds) as plain data; the export pass
turns it into ``torch.export.Dim`` (``torch_dynamic_shapes``). Either may appear in a
``Program``'s dynamic shapes.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen(repr=False)
class Dim:
    """``torch.export.Dim(name, min=min, max=max)``, made only when exporting."""

    name: str
    min: int | None = None
    max: int | None = None

    def __repr__(self) -> str:
        # torch.export.Dim's own (Dim._readable), so a program's cache key reads alike
        low = None if self.min == 2 else (0 if self.min is None else self.min)
        bounds = [f"min={low}"] if low is not None else []
        bounds += [f"max={self.max}"] if self.max is not None else []
        return f"Dim({', '.join([repr(self.name), *bounds])})"


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
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(convert(v) for v in value)
        return value

    return convert(shapes)
