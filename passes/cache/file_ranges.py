"""Blobs read in place: a tensor whose bytes are a range of a file this process maps.

A checkpoint loaded with ``torch.load(..., mmap=True)`` gives tensors whose storage is
the file's own pages. Storing them as blobs would copy the model's weights into the
cache once per run (the float weights a quantizing pipeline keeps for resuming at the
quantizer: most of its cache). Such a tensor's blob is a *link* instead,
``blobs/<digest[:2]>/<digest>.link``: the file's path, the range's offset and size.

A link is written only when the file's range holds the blob's bytes: when
``/proc/self/pagemap`` shows that no page of the tensor's range was written to since it
was mapped (``ir.mapped_pages.unmodified``), its bytes in memory, which the digest was
taken of, are the file's, and the file is not read again (at Llama-3.2-1B's shapes that
read and hash was 5.7 GB per run on the writer thread); otherwise the range is read back
and hashed to the digest (a page modified in memory is stored as bytes instead). A link
is checked again every time it is read: a file changed, moved or
deleted since makes the link a missing blob (``MissingBlob``: the entry is dropped and
recomputed, never used). The run's key already hashes the checkpoint, so a run whose
checkpoint changed does not look for the old entries anyway.

Linux only (``/proc/self/maps``); elsewhere every tensor is stored as bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir.file_mappings import Mappings, open_regular

#: Read and hashed in pieces this large, through one buffer per call (or straight into
#: the destination): no copy of a whole weight is made to check it, and no stream of
#: fresh 4 MB byte strings, which glibc serves from the thread's heap once the first is
#: freed (its mmap threshold rises) and keeps resident after (~11 MB at stories).
_CHUNK = 1 << 20


class LinkMismatch(Exception):
    """A link's file range is absent or does not hash to its blob's digest."""


@attrs.frozen
class FileRange:
    """Bytes of ``path`` at ``offset``; ``data`` are the same bytes in memory (stored
    instead when the file's turn out to differ). ``unmodified``: pagemap showed no page of
    them written to since mapping, so they are the file's without reading it."""

    path: str
    offset: int
    size: int
    data: Any = attrs.field(repr=False, eq=False)
    unmodified: bool = attrs.field(default=False, eq=False)


def in_place(t: Any, mappings: Mappings) -> FileRange | None:
    """A tensor covering its storage in C order whose bytes are a mapped file's, as a
    ``FileRange`` (None: its bytes live only in memory)."""
    from pteflow.ir import hashing, mapped_pages

    storage = t.untyped_storage()
    address, size = storage.data_ptr(), storage.nbytes()
    found = mappings.range_of(address, size)
    if found is None:
        return None
    clean = mapped_pages.unmodified(address, size)
    return FileRange(found[0], found[1], size, hashing.raw_bytes(t), clean)


def range_digest(path: str, offset: int, size: int, into: bytearray | None = None) -> str:
    """sha256 of ``size`` bytes of ``path`` at ``offset`` (copied ``into`` when given).
    Raises LinkMismatch when the file is shorter or cannot be read."""
    try:  # a FIFO put in a link's place must not hang the run
        with open_regular(path) as f:
            return descriptor_digest(f.fileno(), offset, size, into, where=path)
    except OSError as e:
        raise LinkMismatch(f"{path} cannot be read ({e.strerror or e})") from None


def descriptor_digest(
    fd: int,
    offset: int,
    size: int,
    into: bytearray | None = None,
    *,
    piece: int = _CHUNK,
    where: str = "the file",
) -> str:
    """sha256 of ``size`` bytes of the open file ``fd`` at ``offset``, read ``piece`` bytes
    at a time with ``preadv`` (no file position: threads may share the descriptor) into
    one buffer, or ``into`` when given (then copied there). Raises LinkMismatch when the
    file ends first, OSError when it cannot be read."""
    h = hashlib.sha256()
    view = memoryview(into) if into is not None else None
    scratch = memoryview(bytearray(min(piece, size) if view is None else 0))
    done = 0
    while done < size:
        n = min(piece, size - done)
        buf = view[done : done + n] if view is not None else scratch[:n]
        got = os.preadv(fd, [buf], offset + done)
        if not got:
            raise LinkMismatch(f"{where} ends before the linked range")
        h.update(buf[:got])
        done += got
    return h.hexdigest()


def link_text(source: FileRange, digest: str) -> bytes | None:
    """The link file's content for ``source``, or None when the file's range does not
    hold the blob's bytes (then the bytes are stored). ``digest`` is the bytes' in memory:
    the file is read to compare only when they may differ from it."""
    try:
        if (
            not source.unmodified
            and range_digest(source.path, source.offset, source.size) != digest
        ):
            return None
    except LinkMismatch:
        return None
    record = {"path": source.path, "offset": source.offset, "size": source.size}
    return json.dumps(record).encode()


def _record(text: bytes) -> tuple[str, int, int]:
    try:
        record = json.loads(text)
        return str(record["path"]), int(record["offset"]), int(record["size"])
    except (ValueError, KeyError, TypeError):
        raise LinkMismatch("the link is not readable") from None


def links_to(link: Path, source: FileRange) -> bool:
    """The link file points at ``source``'s range (False: elsewhere, unreadable, gone)."""
    try:
        return _record(link.read_bytes()) == (source.path, source.offset, source.size)
    except (LinkMismatch, OSError):
        return False


#: Links this process found broken (and removed), and why: every entry that refers to one
#: is dropped for the same reason, said the same way.
_BROKEN: dict[Path, str] = {}


def read_link(link: Path, digest: str, size: int) -> bytearray:
    """The bytes ``link`` points at, checked against ``digest``. Raises LinkMismatch; a
    link found broken is removed (asked for again, the same reason)."""
    try:
        path, offset, length = _record(link.read_bytes())
        if length != size:
            raise LinkMismatch("the link has the wrong size")
        data = bytearray(size)
        if range_digest(path, offset, size, into=data) != digest:
            raise LinkMismatch(f"{path} changed since it was linked (checksum mismatch)")
    except FileNotFoundError:
        raise LinkMismatch(_BROKEN.get(link, "missing (neither stored nor linked)")) from None
    except LinkMismatch as e:
        link.unlink(missing_ok=True)
        _BROKEN[link] = str(e)
        raise
    return data
