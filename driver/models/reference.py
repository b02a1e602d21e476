"""The eager reference without a second copy of the weights.

A run compiles ``LoadedModel.program`` and checks the ``.pte`` against
``LoadedModel.reference``: untouched eager modules computing the same thing. Keeping a
deep copy of the model for that costs a second copy of every weight for the whole run.
A source that can build its model again (a Llama from params + a memory-mapped
checkpoint, or seeded random weights) gives a ``LazyReference`` instead: nothing is
built until verification (or a reproducer, or ``--track-numerics``) reads it, and with
verification off nothing is ever built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any


class LazyReference(Mapping[str, Any]):
    """Eager modules per method, built by ``build`` on first use (then kept).

    ``fresh()`` builds another, independent set (for a caller that runs passes on it,
    such as the quantized reference's rebuild), without keeping it.
    """

    def __init__(self, methods: tuple[str, ...], build: Callable[[], Mapping[str, Any]]):
        self._methods = methods
        self._build = build
        self._modules: Mapping[str, Any] | None = None

    @property
    def built(self) -> bool:
        """Whether the modules exist (a run with verification off never builds them)."""
        return self._modules is not None

    def fresh(self) -> dict[str, Any]:
        return dict(self._build())

    def _get(self) -> Mapping[str, Any]:
        if self._modules is None:
            self._modules = self.fresh()
        return self._modules

    def __getitem__(self, method: str) -> Any:
        if method not in self._methods:
            raise KeyError(method)
        return self._get()[method]

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)


def fresh_copy(reference: Mapping[str, Any]) -> dict[str, Any]:
    """Modules a caller may change: built afresh when lazy, else deep copies."""
    if isinstance(reference, LazyReference):
        return reference.fresh()
    import copy

    return {m: copy.deepcopy(mod) for m, mod in reference.items()}
