"""The cache directory: authenticated entry files, eviction, info, clear.

Entries are files ``entries/<key[:2]>/<key>.entry``, and the tensors and large byte
strings they hold are blobs shared by all entries, ``blobs/<digest[:2]>/<digest>``
(``blobs.py``)::

    MAGIC | header length (8 bytes) | HMAC (32 bytes) | header (JSON) | payload (pickle)

The HMAC (``auth.sign`` with the user's key) covers the magic and the header; the header
holds the entry's own key, the pass's PassRecord, the level and the payload's length and
sha256, so the payload is authenticated too once its digest matches. Reading checks, in
this order and before anything is unpickled: the magic, the HMAC (an entry this user did
not write, or one edited since, fails here and is dropped unread), the header's key
against the file's address (an entry copied or renamed over another key is dropped), the
payload's length and digest. Every drop is one warning line, and the pass is recomputed.

Directories are created private (0700) and entries written 0600 (``mkstemp``), to a
temporary file renamed into place by the session. The directory is capped in size:
least recently used entries (by mtime, refreshed on every hit) go first, then the blobs
no entry refers to (mark and sweep; a blob younger than ``_BLOB_GRACE_S`` is spared, as
another run may be about to commit an entry that refers to it). The header lists its
blobs and their sizes, authenticated with it; a missing or altered blob makes the entry
a miss (one warning), never a wrong program.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from pteflow.ir.errors import UserError

from . import auth
from .blobs import LINK, BlobDir
from .delegate_texts import DelegateTexts
from .input_key import InputKey, prune_markers
from .settings import DEFAULT_MAX_BYTES, default_cache_dir

if TYPE_CHECKING:
    from pteflow.ir import Program

    from ..base import Pass
    from .session import CacheSession

MAGIC = b"PTEFLOWC3\n"
_SIZE = 8
_MAC = 32
LAST_RUN = "last_run.json"
_STALE_TMP_S = 3600.0
_BLOB_GRACE_S = 600.0


def write_parts(f: Any, parts: Sequence[bytes]) -> None:
    """Write an entry's bytes (a seam for tests that interrupt a write half-way)."""
    for part in parts:
        f.write(part)


class CacheWarning(UserWarning):
    """A cache entry could not be read or written (the run goes on without it)."""


class CorruptEntry(Exception):
    """An entry failed authentication or its checksums, or could not be decoded."""


@attrs.frozen
class CacheInfo:
    directory: Path
    entries: int
    total_bytes: int  # entries and blobs
    max_bytes: int
    last_run: dict[str, Any] | None
    blobs: int = 0
    blob_bytes: int = 0
    #: bytes the entries refer to beyond what is stored: what sharing blobs saved
    shared_bytes: int = 0
    #: blobs that are links to the files they were read from (a memory-mapped checkpoint)
    linked: int = 0
    linked_bytes: int = 0  # what those links stand for (not stored in the cache)


class PassCache:
    """A directory of pass results; see the module docstring.

    ``log`` receives warnings (dropped entries, results that cannot be stored); the
    default issues a ``CacheWarning``. The user's key (``auth.user_key``) is read on
    first use.
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        log: Callable[[str], None] | None = None,
    ):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.max_bytes = max_bytes
        self.log = log or (lambda msg: warnings.warn(msg, CacheWarning, stacklevel=3))
        self._key: bytes | None = None
        #: thread id -> the temporary entry file it is writing (removed if abandoned)
        self.partial: dict[int, Path] = {}
        #: id -> (byte string, its sha256): digests the run's writer took of payloads
        #: the run still holds (the writer thread's, or a forked writer's children's,
        #: reported back: ``forked.py``), for the next entries and the full-run entry;
        #: holds them: the driver clears them before it lets the run's program go
        #: (``driver/release.keep``), an abandoned writer at once
        self.digests: dict[int, tuple[Any, str]] = {}
        #: the delegates the run's entries serialized, with their serde texts, for the
        #: next entries that hold them (``delegate_texts.py``); until the session
        #: finishes or its writer is abandoned (``forget_held``)
        self.delegate_texts = DelegateTexts()
        #: first keys kept for the next run on the same program object (``input_key``)
        self._inputs: list[tuple[Any, InputKey]] = []

    def forget_held(self) -> None:
        """Let go of what the run's writer remembered of its programs (``digests``,
        ``delegate_texts``): they hold its payloads and delegates alive."""
        self.digests.clear()
        self.delegate_texts.clear()

    @property
    def secret(self) -> bytes:
        if self._key is None:
            self._key = auth.user_key()
        return self._key

    # ---------------------------------------------------------------- layout

    @property
    def entries_dir(self) -> Path:
        return self.directory / "entries"

    def path(self, key: str) -> Path:
        return self.entries_dir / key[:2] / f"{key}.entry"

    @property
    def blobs(self) -> BlobDir:
        return BlobDir(self.directory / "blobs", self._mkdir)

    def _mkdir(self, path: Path) -> None:
        """Create ``path`` and its missing parents up to the cache directory, all 0700."""
        missing = [p for p in (path, *path.parents) if not p.exists()]
        for p in reversed(missing):
            with contextlib.suppress(FileExistsError):
                p.mkdir(mode=0o700)

    def check_writable(self) -> None:
        """Create the directory (private), check the key, or raise UserError naming it."""
        try:
            self._mkdir(self.entries_dir)
            fd, tmp = tempfile.mkstemp(dir=self.entries_dir, prefix=".probe.")
            os.close(fd)
            os.unlink(tmp)
        except OSError as e:
            raise UserError(
                f"cache directory {self.directory} is not writable ({e.strerror}); "
                "give another with --cache-dir, or --no-cache"
            ) from None
        _ = self.secret

    def _files(self) -> list[Path]:
        if not self.entries_dir.is_dir():
            return []
        return [p for p in self.entries_dir.glob("*/*.entry") if p.is_file()]

    # ---------------------------------------------------------------- entries

    def read_header(self, key: str) -> dict[str, Any] | None:
        """The entry's authenticated header, or None if absent. Raises CorruptEntry."""
        try:
            with open(self.path(key), "rb") as f:
                return self._header(f, key)
        except FileNotFoundError:
            return None

    def _header(self, f: Any, key: str) -> dict[str, Any]:
        magic = f.read(len(MAGIC))
        if magic != MAGIC:
            raise CorruptEntry("not an entry of this pteflow's format")
        head = f.read(_SIZE + _MAC)
        if len(head) != _SIZE + _MAC:
            raise CorruptEntry("truncated header")
        size, mac = int.from_bytes(head[:_SIZE], "big"), head[_SIZE:]
        raw = f.read(size)
        if len(raw) != size:
            raise CorruptEntry("truncated header")
        if not auth.verify(self.secret, mac, MAGIC, raw):
            raise CorruptEntry(
                "fails authentication: not written by you with this key, or edited since"
            )
        try:
            header = json.loads(raw)
        except ValueError as e:
            raise CorruptEntry(f"header is not JSON: {e}") from None
        if header.get("key") != key:
            raise CorruptEntry(
                f"it holds the result for key {str(header.get('key'))[:12]} "
                "(copied or renamed over another entry)"
            )
        return header

    def read(self, key: str) -> tuple[dict[str, Any], bytes]:
        """Header and authenticated payload bytes. Raises FileNotFoundError, CorruptEntry."""
        with open(self.path(key), "rb") as f:
            header = self._header(f, key)
            payload = f.read()
        if len(payload) != header.get("payload_bytes"):
            raise CorruptEntry(
                f"corrupt: payload is {len(payload)} bytes, header says "
                f"{header.get('payload_bytes')}"
            )
        if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
            raise CorruptEntry("corrupt: payload checksum mismatch")
        with contextlib.suppress(OSError):
            os.utime(self.path(key))  # least recently used = oldest mtime
        return header, payload

    def drop(self, key: str, why: str) -> None:
        self.log(f"pass cache: dropped entry {key[:12]}: {why}; recomputing it")
        self.remove(key)

    def remove(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self.path(key).unlink()

    def write_tmp(self, key: str, header: dict[str, Any], payload: bytes) -> Path:
        """Write an entry to a temporary file beside its final path (commit renames it)."""
        header = {**header, "key": key, "payload_bytes": len(payload)}
        header["payload_sha256"] = hashlib.sha256(payload).hexdigest()
        raw = json.dumps(header, sort_keys=True, default=str).encode()
        mac = auth.sign(self.secret, MAGIC, raw)
        final = self.path(key)
        self._mkdir(final.parent)
        prefix = f".{key[:12]}.{os.getpid()}."  # the pid: a forked writer's leftovers
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=final.parent)
        self.partial[threading.get_ident()] = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                write_parts(f, (MAGIC + len(raw).to_bytes(_SIZE, "big") + mac + raw, payload))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            self.partial.pop(threading.get_ident(), None)
        return Path(tmp)

    # ---------------------------------------------------------------- maintenance

    def _blob_files(self) -> dict[str, tuple[float, int, Path]]:
        root = self.blobs.directory
        out = {}
        for p in sorted(root.glob("*/*")) if root.is_dir() else ():  # a blob before its link
            if p.name.startswith("."):
                continue
            digest = p.name.removesuffix(LINK)  # a link stands for its blob (file_ranges.py)
            with contextlib.suppress(OSError):
                st = p.stat()
                out[p.name if digest in out else digest] = (st.st_mtime, st.st_size, p)
        return out

    @staticmethod
    def _peek(path: Path) -> dict[str, Any]:
        """An entry's header, unauthenticated (only for sizes and blob lists)."""
        with contextlib.suppress(OSError, ValueError), open(path, "rb") as f:
            if f.read(len(MAGIC)) == MAGIC:
                size = int.from_bytes(f.read(_SIZE), "big")
                f.seek(_MAC, os.SEEK_CUR)
                header = json.loads(f.read(size))
                if isinstance(header, dict):
                    return header
        return {}

    def _entries(self) -> list[tuple[float, int, Path, dict[str, int]]]:
        out = []
        for p in self._files():
            with contextlib.suppress(OSError):
                st = p.stat()
                refs = self._peek(p).get("blobs") or {}
                out.append((st.st_mtime, st.st_size, p, refs if isinstance(refs, dict) else {}))
        return out

    def evict(self) -> int:
        """Delete least recently used entries until entries and the blobs they refer to fit
        in ``max_bytes``; then the blobs no entry refers to, and stale temporary files."""
        now = time.time()
        for d in (self.entries_dir, self.blobs.directory):
            for tmp in d.glob("*/.*.tmp") if d.is_dir() else ():
                with contextlib.suppress(OSError):
                    if now - tmp.stat().st_mtime > _STALE_TMP_S:
                        tmp.unlink()
        entries = self._entries()
        blob_files = self._blob_files()
        refcount: dict[str, int] = {}
        for *_, refs in entries:
            for digest in refs:
                refcount[digest] = refcount.get(digest, 0) + 1
        total = sum(size for _, size, _, _ in entries)
        total += sum(blob_files[d][1] for d in refcount if d in blob_files)
        removed = 0
        for _mtime, size, p, refs in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
            total -= size
            for digest in refs:
                refcount[digest] -= 1
                if not refcount[digest] and digest in blob_files:
                    total -= blob_files[digest][1]
        for digest, (mtime, _size, p) in blob_files.items():
            if not refcount.get(digest) and now - mtime > _BLOB_GRACE_S:
                with contextlib.suppress(OSError):
                    p.unlink()
        prune_markers(self.directory)
        return removed

    def info(self) -> CacheInfo:
        entries = self._entries()
        blob_files = self._blob_files()
        referenced: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for *_, refs in entries:
            for digest, size in refs.items():
                referenced[digest] = referenced.get(digest, 0) + int(size)
                sizes[digest] = int(size)
        links = [d for d, (_, _, p) in blob_files.items() if p.name.endswith(LINK)]
        blob_bytes = sum(size for _, size, _ in blob_files.values())
        unique = sum(sizes[d] for d in referenced if d in blob_files)  # as the entries see them
        last = None
        with contextlib.suppress(OSError, ValueError):
            last = json.loads((self.directory / LAST_RUN).read_text())
        return CacheInfo(
            self.directory,
            len(entries),
            sum(size for _, size, _, _ in entries) + blob_bytes,
            self.max_bytes,
            last,
            blobs=len(blob_files),
            blob_bytes=blob_bytes,
            shared_bytes=sum(referenced.values()) - unique,
            linked=len(links),
            linked_bytes=sum(sizes.get(d, 0) for d in links),
        )

    def clear(self) -> int:
        """Delete every entry and blob (and the last-run record); return how many entries."""
        n = 0
        for p in self._files():
            with contextlib.suppress(OSError):
                p.unlink()
                n += 1
        for _mtime, _size, p in self._blob_files().values():
            with contextlib.suppress(OSError):
                p.unlink()
        for d in (self.entries_dir, self.blobs.directory):
            for tmp in d.glob("*/.*.tmp") if d.is_dir() else ():
                with contextlib.suppress(OSError):
                    tmp.unlink()
        prune_markers(self.directory, keep=0)
        with contextlib.suppress(OSError):
            (self.directory / LAST_RUN).unlink()
        return n

    # ---------------------------------------------------------------- a run

    def input_key(self, program: Program, *, keep: bool = False) -> InputKey:
        """The first key of a run on ``program`` (``input_key.py``). ``keep``: kept for the
        next call on the same program object (the driver's look-up hands its key to the
        run: one input is hashed once); else made now, or taken from such a call.

        Raises:
            Unhashable: the program cannot be hashed faithfully.
        """
        self._inputs = [(ref, key) for ref, key in self._inputs if ref() is not None]
        for i, (ref, key) in enumerate(self._inputs):
            if ref() is program:
                if not keep:
                    del self._inputs[i]
                return key
        key = InputKey(program, self.directory, self._mkdir)
        if keep:
            self._inputs.append((weakref.ref(program), key))
        return key

    def session(
        self,
        ordered: Sequence[Pass],
        program: Program,
        *,
        read: bool = True,
    ) -> CacheSession:
        from .session import CacheSession

        return CacheSession(self, tuple(ordered), program, read=read)
