"""Digests of tensors' bytes, each taken once per process while the tensor is unchanged.

``tensor_digest(t)`` is the sha256 of a plain strided tensor's bytes in C order, remembered
per tensor object with its version counter and storage address (``stamp``): a weight is
hashed once for the run's first key, and the cache's blob addresses and ``known_bytes``
find it remembered. ``digests_in_parallel`` takes many at once on a few threads (sha256
releases the GIL); ``remember`` records one taken elsewhere (read from the file a
memory-mapped weight is a range of: ``passes.cache.input_key``).

Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: id(tensor) -> (weak reference, version, data pointer, sha256 of its bytes): each weight
#: is hashed once per process (the input's key, then the cache's blob addresses) while it
#: stays unchanged. Keyed by identity: tensors compare elementwise.
_DIGESTS: dict[int, tuple[Any, int, int, str]] = {}
_DIGESTS_LOCK = threading.Lock()


def plain_cpu(t: Any) -> bool:
    """A CPU strided tensor of torch's own classes (no subclass), not quantized: its
    bytes are its value (the pass cache, ``known_bytes`` and the parallel digests ask)."""
    torch = sys.modules.get("torch")
    return (
        torch is not None
        and type(t) in (torch.Tensor, torch.nn.Parameter)
        and t.layout == torch.strided
        and t.device.type == "cpu"
        and not t.is_quantized
    )


def raw_bytes(t: torch.Tensor) -> memoryview:
    """A plain strided tensor's bytes in C order (a view when it is contiguous on CPU)."""
    import torch

    flat = t.detach().cpu().contiguous().reshape(-1)
    if not flat.numel():
        return memoryview(b"")
    return memoryview(flat.view(torch.uint8).numpy())  # type: ignore[arg-type]


#: From this size a tensor's bytes are hashed in pieces, its memory-mapped file's pages
#: handed back after each (``mapped_pages.sha256_releasing``).
_HASHED_IN_PIECES = 8 << 20


def _sha256(t: torch.Tensor) -> str:
    """sha256 (hex) of ``raw_bytes(t)``; a large contiguous CPU tensor's through
    ``mapped_pages.sha256_releasing`` (its memory-mapped file's pages handed back)."""
    data = raw_bytes(t)
    if data.nbytes < _HASHED_IN_PIECES or t.device.type != "cpu" or not t.is_contiguous():
        return hashlib.sha256(data).hexdigest()
    from . import mapped_pages

    return mapped_pages.sha256_releasing(data, t.data_ptr())


def stamp(t: torch.Tensor) -> tuple[int, int] | None:
    """What a remembered digest is valid for: ``t``'s version and storage address; None
    for an inference tensor (no version counter: its digest is never remembered)."""
    try:
        return (t._version, t.data_ptr() if t.numel() else 0)
    except RuntimeError:
        return None


def remembered_digest(t: torch.Tensor) -> str | None:
    """``tensor_digest(t)`` if it was taken and ``t`` is unchanged since, without reading
    ``t``'s bytes; else None."""
    now = stamp(t)
    if now is None:
        return None
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(id(t))
    if known is not None and known[0]() is t and known[1:3] == now:
        return str(known[3])
    return None


def remembered_tensors() -> list[tuple[torch.Tensor, str]]:
    """The live tensors whose digest this process remembers and that are unchanged since,
    each with it (``ir.known_bytes`` compares byte strings with them)."""
    with _DIGESTS_LOCK:
        refs = [entry[0] for entry in _DIGESTS.values()]
    out = []
    for ref in refs:
        t = ref()
        digest = None if t is None else remembered_digest(t)
        if digest is not None:
            out.append((t, digest))
    return out


def tensor_digest(t: torch.Tensor) -> str:
    """sha256 (hex) of a plain strided tensor's bytes in C order, remembered per tensor
    object until it is modified in place (its version counter) or given other storage."""
    known = remembered_digest(t)
    if known is not None:
        return known
    when = stamp(t)
    digest = _sha256(t)
    remember(t, digest, when)
    return digest


def remember(t: torch.Tensor, digest: str, when: tuple[int, int] | None) -> None:
    """Record ``digest`` as ``t``'s, taken when its ``stamp`` was ``when``: kept only if
    ``t`` is unchanged since (same version, same storage), like ``tensor_digest``'s own."""
    if when is None or stamp(t) != when:
        return
    key = id(t)
    with contextlib.suppress(TypeError):  # a tensor without weakref support: not remembered
        ref = weakref.ref(t, lambda _r: _DIGESTS.pop(key, None))
        with _DIGESTS_LOCK:
            _DIGESTS[key] = (ref, *when, digest)


#: Weights at least this large in all are hashed on several threads first (below it the
#: threads cost more than they save).
PARALLEL_DIGESTS_BYTES = 64 << 20


def digests_in_parallel(tensors: list[torch.Tensor]) -> None:
    """Take (and remember) the digests of the plain weights among ``tensors`` on up to
    ``os.cpu_count()`` (at most 4) threads: sha256 releases the GIL, and a run's first key
    waits for every weight's digest (5.7 GB at Llama-3.2-1B's shapes: 6.5 s on one
    thread). The walk after finds them remembered."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    todo = {
        id(t): t
        for t in tensors
        if plain_cpu(t)
        and not t.is_inference()  # (an inference tensor's digest is not kept)
        and remembered_digest(t) is None
    }
    workers = min(4, os.cpu_count() or 1)
    if workers < 2 or sum(t.nbytes for t in todo.values()) < PARALLEL_DIGESTS_BYTES:
        return
    biggest_first = sorted(todo.values(), key=lambda t: -t.nbytes)
    with ThreadPoolExecutor(workers, thread_name_prefix="pteflow-digest") as pool:
        list(pool.map(tensor_digest, biggest_first))
