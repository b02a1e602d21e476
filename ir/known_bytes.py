"""The digest of a byte string that holds a weight's bytes, found by comparing them.

Backends copy weights into byte strings: XNNPACK's named data hold each weight it
delegates byte for byte where no layout change applies (every fp32 linear weight), and
the pass cache stores such strings as blobs addressed by their sha256. The run hashed
those weights already, for its key (``hashing.tensor_digest`` remembers each digest while
the tensor is unchanged), and comparing two buffers costs about a tenth of hashing one:
at Llama-3.2-1B's shapes the 5 GB of named data took ~3 s of sha256 in the forked
writer's child, beside the run's next pass on a 2-core machine.

``WeightBytes().digest_of(data)`` is the digest of a remembered weight of ``data``'s size
whose bytes equal it, or None (the caller hashes). The candidates are the weights of
that size whose first ``PREFIX`` bytes match; at most ``FULL_COMPARES`` are compared
whole, so the worst case (weights alike but for their last bytes) costs a bounded
fraction of hashing more. A memory-mapped weight's pages are handed back piece by piece
as they are compared (``mapped_pages.equal_releasing``).

Main thread only: there a weight does not change while it is compared (the passes run
on it), while another thread (the thread writer's) could compare a weight a pass is
writing in place; elsewhere ``digest_of`` answers None.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from . import hashing, mapped_pages

PREFIX = 64
FULL_COMPARES = 2


class WeightBytes:
    """The run's remembered weights by size, read when first asked (per use: it holds
    the weights)."""

    def __init__(self) -> None:
        self._by_size: dict[int, list[tuple[Any, str]]] | None = None
        self._mappings: list[tuple[int, int]] = []

    def digest_of(self, data: Any) -> str | None:
        """The digest of a remembered weight whose bytes are ``data``'s (a buffer), or None."""
        if threading.current_thread() is not threading.main_thread():
            return None
        if self._by_size is None:
            self._by_size = _by_size()
            self._mappings = list(mapped_pages.data_file_mappings())
        view = memoryview(data).cast("B")
        candidates = self._by_size.get(view.nbytes)
        if not candidates:
            return None
        head = bytes(view[:PREFIX])
        compared = 0
        for t, digest in candidates:
            address = t.data_ptr()
            if ctypes.string_at(address, len(head)) != head:
                continue
            if compared == FULL_COMPARES:
                return None
            compared += 1
            if mapped_pages.equal_releasing(view, address, mappings=self._mappings):
                return digest
        return None


def _by_size() -> dict[int, list[tuple[Any, str]]]:
    out: dict[int, list[tuple[Any, str]]] = {}
    for t, digest in hashing.remembered_tensors():
        if hashing.plain_cpu(t) and t.is_contiguous() and t.numel():
            out.setdefault(t.numel() * t.element_size(), []).append((t, digest))
    return out
