"""The emitter reads each constant once: the checkpoint's pages it read are handed back.

ExecuTorch's emitter copies every constant tensor's bytes into the program it builds
(``_Emitter._tensor_spec_to_evalue``). For a weight that is still the memory-mapped
checkpoint's (the embedding table and the norms of an XNNPACK Llama; every weight of a
portable one), that leaves both the file's pages and the copy resident: at stories'
shapes the embedding twice, the run's peak. While ``to_executorch`` runs, each constant's
file pages are handed back as soon as the emitter has its copy
(``pteflow.ir.mapped_pages``: only pages never modified; the bytes stay in the page
cache). Nothing the emitter computes changes.

The method is upstream's private one, wrapped for the duration of the call (pteflow
converts from one thread) and restored after; if a later ExecuTorch renames it, nothing
is wrapped and the pages are handed back after the pass instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def constants_pages_released() -> Iterator[None]:
    """While converting: release each constant's file pages once the emitter copied it."""
    from pteflow.ir import mapped_pages

    try:
        from executorch.exir.emit._emitter import _Emitter
    except ImportError:
        yield
        return
    with mapped_pages.released_after_each(_Emitter, "_tensor_spec_to_evalue", _copied):
        yield


def _copied(self: Any, spec: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """The storage the emitter copied for ``spec`` (a constant's), if any."""
    storage = getattr(spec, "storage", None) if getattr(spec, "const", False) else None
    return [] if storage is None else [storage]
