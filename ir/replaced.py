"""An upstream class or module attribute replaced for a block, then given back.

pteflow calls some upstream routines differently by swapping one attribute while a pass
runs (XNNPACK's idle passes, the partition copies, releasing mapped pages). Each swap goes
through ``replaced`` so it is undone the same way however the block ends: the attribute
the owner had of its own is put back, one it only inherited is deleted again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_ABSENT = object()


@contextlib.contextmanager
def replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    """While inside, ``owner.name`` is ``value``; on exit it is what ``owner`` itself held
    before (deleted if it held nothing of its own and inherited it). A class attribute is
    process-wide: the caller lowers from one thread."""
    own = vars(owner).get(name, _ABSENT)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if own is _ABSENT:
            delattr(owner, name)
        else:
            setattr(owner, name, own)


def installed_is(package: str, release: str) -> bool:
    """Whether ``package``'s installed release is ``release``: a swap written against one
    release's private code is made only there (elsewhere upstream runs as it is)."""
    import importlib.metadata

    try:
        return importlib.metadata.version(package) == release
    except importlib.metadata.PackageNotFoundError:
        return False
