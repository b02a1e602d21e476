"""A .pte stored as pieces: its runs that are known buffers become blob references.

The EXECUTORCH entry and the full-run entry hold the ``.pte``; its weights are already
blobs (the tensors and named data of the program's entries), so the blob pickler stores
the ``.pte`` as literal bytes between references to them (``PteBytes``). ExecuTorch
holds the ``.pte`` as a list of pieces (``ir.serialized.pte_pieces``), some of them the
named data's byte strings themselves: they are searched one by one, never joined.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from pteflow.ir import hashing, mapped_pages

from .blobs import _plain

#: Smallest known buffer looked for inside a .pte.
MIN_SPLIT = 4096
_STEP = 8


class PteBytes:
    """A .pte pickled as pieces: the runs of it that are known buffers (delegate payloads,
    named data, constant tensors, found where ExecuTorch placed them) become references to
    their blobs, the rest stays literal. Unpickles to the same bytes as one ``bytes``.

    ``pieces`` are the .pte as ExecuTorch holds it (``ir.serialized.pte_pieces``), searched
    one by one: no contiguous copy of the .pte is made to store it."""

    def __init__(self, pieces: Sequence[bytes], known: Iterable[Any]):
        self.pieces = list(pieces)
        self.known = list(known)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_join, (split(self.pieces, self.known),))


def _view(obj: Any) -> memoryview | None:
    if isinstance(obj, bytes | bytearray):
        return memoryview(obj)
    if _plain(obj) and obj.is_contiguous():
        return hashing.raw_bytes(obj)
    return None


def split(data: Sequence[bytes], known: Iterable[Any]) -> list[Any]:
    """``data`` (consecutive pieces of bytes) as literal bytes and the ``known`` objects
    whose bytes it holds, in order.

    Walks each piece in steps of 8 bytes (ExecuTorch aligns segments and constants to at
    least that) and, where the next 32 bytes start a known buffer, takes that buffer whole.
    """
    index: dict[bytes, list[tuple[memoryview, Any]]] = {}
    for obj in known:
        view = _view(obj)
        if view is not None and len(view) >= MIN_SPLIT:
            index.setdefault(bytes(view[:32]), []).append((view, obj))
    tensors = any(
        not isinstance(obj, bytes | bytearray) for views in index.values() for _v, obj in views
    )
    compared = tensors and threading.current_thread() is threading.main_thread()
    mappings = list(mapped_pages.data_file_mappings()) if compared else []  # (see _holds)
    pieces: list[Any] = []
    for part in data:
        _split_into(pieces, part, index, mappings)
    return pieces


def _split_into(
    pieces: list[Any], data: bytes, index: dict[bytes, list[Any]], mappings: list[tuple[int, int]]
) -> None:
    literal = pos = 0
    end = len(data)
    while index and pos + 32 <= end:
        match = None
        for view, obj in index.get(data[pos : pos + 32], ()):
            if _holds(data, pos, view, obj, mappings):
                match = (view, obj)
                break
        if match is None:
            pos += _STEP
            continue
        if literal < pos:
            pieces.append(data[literal:pos])
        pieces.append(match[1])
        pos = literal = pos + len(match[0])
    if literal < end:
        pieces.append(data[literal:] if literal else data)


def _holds(
    data: bytes, pos: int, view: memoryview, obj: Any, mappings: list[tuple[int, int]]
) -> bool:
    """``data`` holds ``obj``'s bytes at ``pos``. A piece that is the known byte string
    itself (ExecuTorch's ``.pte`` holds the named data's objects: 5 GB at 1B) is not
    compared with itself. A tensor's bytes may be a memory-mapped checkpoint's: on the
    main thread they are compared a piece at a time, each piece's pages handed back
    (``mapped_pages.equal_releasing``); elsewhere one whose digest the run remembers is
    compared by digest, so that no other thread pages the file back in while the
    emitter's copy is resident (only the main thread hands such pages back)."""
    if pos == 0 and data is obj and isinstance(obj, bytes):  # immutable: the same bytes
        return True
    if pos + len(view) > len(data):
        return False
    tensor = not isinstance(obj, bytes | bytearray)
    if tensor and threading.current_thread() is threading.main_thread():
        piece = memoryview(data)[pos : pos + len(view)]
        return mapped_pages.equal_releasing(piece, obj.data_ptr(), mappings=mappings)
    known = hashing.remembered_digest(obj) if tensor else None
    if known is None:
        return data.startswith(view, pos)
    return hashlib.sha256(memoryview(data)[pos : pos + len(view)]).hexdigest() == known


def _join(pieces: list[Any]) -> bytes:
    out = io.BytesIO()
    for piece in pieces:
        if isinstance(piece, bytes | bytearray):
            out.write(piece)
        else:
            out.write(hashing.raw_bytes(piece))
    return out.getvalue()
