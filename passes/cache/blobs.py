"""Content-addressed blobs: the tensors and large byte strings of entries, stored once.

An entry's payload is a pickle whose large values are references, not copies
(``pickle`` persistent ids):

    ("t", digest, nbytes, dtype, shape, stride, offset, kind, requires_grad, storage)
        a tensor viewing the storage whose bytes are blob ``digest``
    ("b", digest, size)   a bytes object (a delegate's payload, a named-data buffer)
    ("a", index)          the index-th reference of this payload again (aliasing kept)

A blob is ``blobs/<digest[:2]>/<digest>``: raw bytes, ``digest`` their sha256. Entries
of one run and of every run share them: a pass that does not touch the weights adds
only its graph. The payload is authenticated (``store.py``), so are the references in
it; a blob is checked against its digest when it is read, and a missing or altered blob
raises ``CorruptEntry`` (the entry is dropped and recomputed, never used).

A tensor that covers its storage in C order is addressed by its bytes' digest, the one
``ir.hashing`` computed for the run's input key (``hashing.tensor_digest``): each weight
is hashed once per process. Other tensors (views, strided) store their whole storage.
A tensor whose bytes are a memory-mapped file's (a checkpoint) is a link to the file's
range instead of a copy (``file_ranges.py``), read and checked the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pteflow.ir import hashing, known_bytes

from . import file_ranges as fr

#: Smaller values stay inside the payload.
MIN_BLOB = 1024


class MissingBlob(Exception):
    """A blob an entry refers to is absent or does not match its digest."""


LINK = ".link"  # blobs/<digest[:2]>/<digest>.link: the blob is a range of another file


def _refreshed(path: Path) -> bool:
    """``path`` is present: its mtime is now (eviction spares young blobs)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


class BlobDir:
    """The ``blobs/`` directory of a cache."""

    def __init__(self, directory: Path, mkdir: Callable[[Path], None]):
        self.directory = directory
        self._mkdir = mkdir

    def path(self, digest: str) -> Path:
        return self.directory / digest[:2] / digest

    def link_path(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}{LINK}"

    def put(self, digest: str, data: Any) -> bool:
        """Make blob ``digest`` present (written atomically) and fresh; True if written.

        ``data`` is the bytes, or a ``FileRange`` whose file holds them: then a link to
        the range is written if the file's bytes hash to ``digest``, else its bytes. A
        link to another file (moved since?) is pointed at this one."""
        path, link = self.path(digest), self.link_path(digest)
        if _refreshed(path):
            return False
        if _refreshed(link):
            repoint = isinstance(data, fr.FileRange) and not fr.links_to(link, data)
            if not repoint:
                return False
        if isinstance(data, fr.FileRange):
            text = fr.link_text(data, digest)
            path, data = (link, text) if text else (path, data.data)
        self._mkdir(path.parent)
        prefix = f".{digest[:12]}.{os.getpid()}."  # the pid: a forked writer's leftovers
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def read(self, digest: str, size: int, *, writable: bool = False) -> Any:
        """The blob's bytes (a bytearray when ``writable``). Raises MissingBlob."""
        try:
            with open(self.path(digest), "rb") as f:
                data: Any = bytearray(size) if writable else f.read(size + 1)
                n = f.readinto(data) if writable else len(data)
                extra = f.read(1) if writable else b""
        except FileNotFoundError:
            return self._read_link(digest, size, writable)
        why = ""
        if n != size or extra:
            why = f"blob {digest[:12]} has the wrong size"
        elif hashlib.sha256(data).hexdigest() != digest:
            why = f"blob {digest[:12]} is corrupt (checksum mismatch)"
        if why:  # useless under its name: removed, so the recomputation writes it again
            self.path(digest).unlink(missing_ok=True)
            raise MissingBlob(why)
        return data

    def _read_link(self, digest: str, size: int, writable: bool) -> Any:
        try:
            data = fr.read_link(self.link_path(digest), digest, size)
        except fr.LinkMismatch as e:
            raise MissingBlob(f"blob {digest[:12]}: {e}") from None
        return data if writable else bytes(data)

    def scrub(self, sizes: dict[str, int]) -> None:
        """Check these blobs, removing the altered ones (after one failed to read:
        a recomputation must write them again, not find them present)."""
        for digest, size in sizes.items():
            with contextlib.suppress(MissingBlob, OSError):
                self.read(digest, int(size))


def _torch() -> Any:
    return sys.modules.get("torch")


def _plain(t: Any) -> bool:
    """A CPU strided tensor whose bytes are all it holds (no subclass, no quantizer, not
    a lazily conjugated or negated view)."""
    return hashing.plain_cpu(t) and t.grad_fn is None and not t.is_conj() and not t.is_neg()


def _whole(t: Any) -> bool:
    """``t`` covers its storage exactly, in C order."""
    return (
        t.storage_offset() == 0
        and t.is_contiguous()
        and t.untyped_storage().nbytes() == t.numel() * t.element_size()
    )


class BlobPickler(pickle.Pickler):
    """Pickles a payload with its large tensors and bytes as blob references.

    ``put(digest, data)`` stores a blob; ``digests`` remembers the digest of bytes
    objects across payloads (by id, holding them) so each is hashed once per run.
    Tensors are blobs from ``MIN_BLOB`` bytes; bytes objects only if their id is in
    ``share`` (the rest, e.g. serialized graphs, stays in the payload).
    """

    def __init__(
        self,
        file: Any,
        put: Callable[[str, Any], Any],
        digests: dict[int, tuple[Any, str]],
        share: set[int],
    ):
        super().__init__(file, protocol=5)
        self._put = put
        self._share = share
        self._digests = digests
        self._seen: dict[int, int] = {}  # id(obj) -> reference index
        self._storages: dict[int, int] = {}  # storage data pointer -> reference index
        self._keep: list[Any] = []  # the objects referenced (ids stay unique)
        self._mappings: fr.Mappings | None = None  # see _in_file
        self._weights = known_bytes.WeightBytes()
        self.blobs: dict[str, int] = {}  # digest -> size

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is bytes:
            if len(obj) < MIN_BLOB or id(obj) not in self._share:
                return None
            return self._ref(obj, lambda: ("b", self._bytes(obj), len(obj)))
        if _torch() is None or not _plain(obj) or obj.nbytes < MIN_BLOB:
            return None
        return self._ref(obj, lambda: self._tensor(obj))

    def _ref(self, obj: Any, make: Callable[[], tuple[Any, ...]]) -> tuple[Any, ...]:
        index = self._seen.get(id(obj))
        if index is not None:
            return ("a", index)
        self._seen[id(obj)] = len(self._keep)
        self._keep.append(obj)
        return make()

    def _bytes(self, data: bytes) -> str:
        known = self._digests.get(id(data))
        if known is not None and known[0] is data:
            digest = known[1]
        else:  # a weight's copy (named data) takes the weight's digest, compared
            digest = self._weights.digest_of(data) or hashlib.sha256(data).hexdigest()
            self._digests[id(data)] = (data, digest)
        self._store(digest, data)
        return digest

    def _store(self, digest: str, data: Any) -> None:
        if digest not in self.blobs:
            self._put(digest, data)
            size = data.size if isinstance(data, fr.FileRange) else len(memoryview(data).cast("B"))
            self.blobs[digest] = size

    def _in_file(self, t: Any) -> fr.FileRange | None:
        if self._mappings is None:  # read once per payload, at its first tensor
            self._mappings = fr.Mappings()
        return fr.in_place(t, self._mappings)

    def _tensor(self, t: Any) -> tuple[Any, ...]:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        index = self._storages.get(ptr) if ptr else None
        if index is None:
            index = self._storages[ptr] = len(self._keep) - 1
        if _whole(t):
            digest = hashing.tensor_digest(t)
            if digest not in self.blobs:  # (where its bytes live is looked up once)
                self._store(digest, self._in_file(t) or hashing.raw_bytes(t))
        else:
            torch = _torch()
            data = memoryview(torch.empty(0, dtype=torch.uint8).set_(storage).numpy())
            digest = hashlib.sha256(data).hexdigest()
            self._store(digest, data)
        kind = "param" if isinstance(t, _torch().nn.Parameter) else "tensor"
        return (
            "t",
            digest,
            storage.nbytes(),
            str(t.dtype).removeprefix("torch."),
            tuple(t.shape),
            tuple(t.stride()),
            t.storage_offset(),
            kind,
            bool(t.requires_grad),
            index,
        )


class BlobUnpickler(pickle.Unpickler):
    """Reads a payload written by ``BlobPickler``, loading (and checking) its blobs."""

    def __init__(self, file: Any, blobs: BlobDir):
        super().__init__(file)
        self._blobs = blobs
        self._refs: list[Any] = []
        self._storages: dict[int, Any] = {}

    def persistent_load(self, pid: Any) -> Any:
        kind = pid[0]
        if kind == "a":
            return self._refs[pid[1]]
        if kind == "b":
            value: Any = self._blobs.read(pid[1], pid[2])
        elif kind == "t":
            value = self._tensor(*pid[1:])
        else:
            raise pickle.UnpicklingError(f"unknown blob reference {kind!r}")
        self._refs.append(value)
        return value

    def _tensor(
        self,
        digest: str,
        nbytes: int,
        dtype: str,
        shape: tuple[int, ...],
        stride: tuple[int, ...],
        offset: int,
        kind: str,
        requires_grad: bool,
        storage: int,
    ) -> Any:
        import torch

        base = self._storages.get(storage)
        if base is None:
            data = self._blobs.read(digest, nbytes, writable=True)
            base = self._storages[storage] = torch.frombuffer(data, dtype=torch.uint8)
        typed = base.view(getattr(torch, dtype))
        t = torch.as_strided(typed, shape, stride, offset)
        if kind == "param":
            return torch.nn.Parameter(t, requires_grad=requires_grad)
        return t.requires_grad_(requires_grad) if requires_grad else t


def dumps(
    value: Any,
    put: Callable[[str, Any], Any],
    digests: dict[int, tuple[Any, str]],
    share: Iterable[Any] = (),
) -> Any:
    """``(payload bytes, {digest: size})`` with the blobs stored through ``put``."""
    buf = io.BytesIO()
    pickler = BlobPickler(buf, put, digests, {id(x) for x in share})
    pickler.dump(value)
    return buf.getvalue(), pickler.blobs


def loads(payload: bytes, blobs: BlobDir) -> Any:
    """The value ``dumps`` pickled. Raises MissingBlob."""
    return BlobUnpickler(io.BytesIO(payload), blobs).load()
