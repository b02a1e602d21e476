"""An EXECUTORCH program's serialized ``.pte``, read without a contiguous copy of it.

``ExecutorchProgramManager`` serializes when it is built and keeps the result as pieces
(a ``Cord`` of the flatbuffer, the constant segment's tensors and the delegate payloads).
Its ``buffer`` property joins them into one ``bytes`` and keeps that for the manager's
life: a second copy of every weight. Everything here goes through the manager's public
``write_to_file`` instead, which hands over the pieces it holds, so sizing, hashing and
writing the ``.pte`` cost no copy, and the one contiguous copy (``pte_bytes``, for the
runtime's loader) lives only as long as its caller keeps it.
"""

from __future__ import annotations

import hashlib
from typing import Any, BinaryIO


class _Pieces:
    """A write-only file that keeps what it is given (the manager's own objects)."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def write(self, data: Any) -> int:
        piece = data if isinstance(data, bytes) else bytes(data)
        self.pieces.append(piece)
        return len(piece)

    def flush(self) -> None:
        pass


def pte_pieces(manager: Any) -> list[bytes]:
    """The ``.pte`` of an ``ExecutorchProgramManager`` as the pieces it holds, in order."""
    sink = _Pieces()
    manager.write_to_file(sink)
    return sink.pieces


def pte_size(manager: Any) -> int:
    """Length in bytes of the manager's ``.pte``."""
    return sum(len(p) for p in pte_pieces(manager))


def pte_sha256(manager: Any) -> str:
    """sha256 (hex) of the manager's ``.pte``: the same as of the file ``write_pte`` writes."""
    h = hashlib.sha256()
    for piece in pte_pieces(manager):
        h.update(piece)
    return h.hexdigest()


def write_pte(manager: Any, file: BinaryIO) -> None:
    """Write the manager's ``.pte`` to an open binary file, piece by piece."""
    for piece in pte_pieces(manager):
        file.write(piece)


def pte_bytes(manager: Any) -> bytes:
    """One contiguous copy of the manager's ``.pte`` (not kept by the manager: it is freed
    when the caller drops it). For loaders that need ``bytes``; prefer the above."""
    return b"".join(pte_pieces(manager))
