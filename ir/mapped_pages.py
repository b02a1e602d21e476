"""Hand back the clean pages of memory-mapped data files (the checkpoint's weights).

A checkpoint loaded with ``torch.load(..., mmap=True)`` (or safetensors) is a mapping of
the file: the pages a pass reads (partitioning reads every linear weight, the emitter
every constant) join the process's resident set and stay there as long as the mapping
lives, which is as long as any weight from it is alive. At SmolLM2-135M's shapes that is
the whole 621 MB file, resident through the end of the run.

``release_mapped_files()`` (every data file's mapping) and ``release_tensor(t)`` (the
pages of one tensor's storage) ask the kernel (``madvise(MADV_DONTNEED)``) to drop this
process's pages of a file mapping when none of them was modified: ``/proc/self/pagemap``
says every resident page of the range is still the file's (a page written to in a
private mapping becomes an anonymous copy, and then the range is left alone). The
file's bytes stay in the page cache, and a later read faults them back in, unchanged:
nothing observable changes but the resident size (the kernel drops clean file pages of
a mapping by itself under memory pressure, with the same effect). Executables and
shared objects (ELF files) are left alone, and so are locked pages (the runtime's; but
``unlock_file`` unlocks a loaded ``.pte``'s first).

Linux only (``/proc/self/maps`` and ``pagemap``); elsewhere nothing is released.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .replaced import replaced

MADV_DONTNEED = 4
_PAGE = mmap.PAGESIZE
_PRESENT, _SWAPPED, _FILE = 1 << 63, 1 << 62, 1 << 61
_is_data: dict[str, bool] = {}


def data_file_mappings() -> Iterator[tuple[int, int]]:
    """``(start, end)`` of this process's mappings of data files: regular files by path,
    not executable, not ELF objects, not deleted."""
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith("/") or "x" in fields[1]:
            continue
        path = fields[5]
        if path.endswith(" (deleted)") or not _data_file(path):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        yield start, end


def release_mapped_files() -> int:
    """Drop the unmodified resident pages of every data file's mapping; bytes released."""
    return sum(_release(start, end) for start, end in data_file_mappings())


def unlock_file(path: str | os.PathLike[str]) -> int:
    """Unlock (``munlock``) this process's mappings of the file ``path`` and drop their
    unmodified resident pages; bytes released.

    ExecuTorch's runtime loads a ``.pte`` by path with a memory-mapping data loader that
    locks every segment it maps (``mlock``, errors ignored): the whole constant segment
    (an fp32 embedding table, at stories 37 MB) is read in and pinned when the program
    loads, while a smoke run reads a few rows of it. Unlocked, the pages fault back in
    from the file where a method reads them; the runtime sees the same bytes.
    """
    from .file_mappings import Mappings

    released = 0
    for start, end in Mappings().of_file(os.path.realpath(path)):
        with contextlib.suppress(OSError, AttributeError):
            _libc().munlock(start, end - start)
        released += _release(start, end)
    return released


def sha256_releasing(data: Any, address: int, piece: int = 4 << 20) -> str:
    """sha256 (hex) of ``data`` (a buffer whose bytes are at ``address``) read ``piece``
    bytes at a time; where it lies in a data file's mapping, the pages of each piece are
    handed back once hashed (those never modified), so hashing a memory-mapped weight
    never holds more than one piece of its file resident (a run hashes its weights for
    cache keys and ``driver inspect``'s names; at stories the output layer's 37 MB was a
    peak of the run's end). Off the main thread it is hashed whole: another thread (the
    cache's writer) could drop a page the main thread writes between check and drop."""
    import hashlib

    view = memoryview(data).cast("B")
    h = hashlib.sha256()
    for lo, hi in pieces_releasing(address, view.nbytes, piece):
        h.update(view[lo:hi])
    return h.hexdigest()


def equal_releasing(
    data: Any,
    address: int,
    piece: int = 4 << 20,
    mappings: Sequence[tuple[int, int]] | None = None,
) -> bool:
    """``data`` (a buffer) holds the bytes at [address, address + len): ``memcmp`` a piece
    at a time, each piece of a data file's mapping handed back once compared (as
    ``sha256_releasing``). A tenth of hashing them: a byte string equal to a weight whose
    digest the run took has that digest (``ir.known_bytes``). ``mappings``: as for
    ``pieces_releasing``."""
    import numpy as np

    view = memoryview(data).cast("B")
    if not view.nbytes:
        return True
    mine = np.frombuffer(view, dtype=np.uint8)  # (read-only is fine: only read)
    base = int(mine.ctypes.data)
    memcmp = _libc().memcmp
    for lo, hi in pieces_releasing(address, view.nbytes, piece, mappings):
        if memcmp(base + lo, address + lo, hi - lo):
            return False
    return True


def pieces_releasing(
    address: int,
    size: int,
    piece: int = 4 << 20,
    mappings: Sequence[tuple[int, int]] | None = None,
) -> Iterator[tuple[int, int]]:
    """``(lo, hi)``: the offsets of [address, address + size) one piece at a time. Where
    the range lies in a data file's mapping and this is the main thread, the whole pages
    of each piece are handed back when the caller asks for the next (or stops); elsewhere
    it is one piece: another thread could drop a page the main thread writes between
    check and drop. ``mappings``: ``data_file_mappings()``, read once for many ranges
    (else here: ~1 ms, so callers hand small ranges in only with the mappings read)."""
    import threading

    inside = threading.current_thread() is threading.main_thread() and any(
        s <= address and address + size <= e
        for s, e in (data_file_mappings() if mappings is None else mappings)
    )
    if not inside:
        yield 0, size
        return
    done = 0
    while done < size:
        end = min(size, ((address + done + piece) // _PAGE) * _PAGE - address)
        end = size if end <= done else end
        try:
            yield done, end
        finally:
            _release(address + done, address + end)
        done = end


def release_tensor(t: Any, mappings: Sequence[tuple[int, int]] | None = None) -> int:
    """Drop the resident pages wholly inside ``t``'s storage (``t``: a tensor or an untyped
    storage) when it lies in a data file's mapping and none of them was modified; bytes
    released. ``mappings``: ``data_file_mappings()``, read once for many tensors (read
    here when None)."""
    storage = t.untyped_storage() if hasattr(t, "untyped_storage") else t
    address, size = storage.data_ptr(), storage.nbytes()
    if size < _PAGE:
        return 0
    for start, end in data_file_mappings() if mappings is None else mappings:
        if start <= address and address + size <= end:
            return _release(address, address + size)
    return 0


@contextlib.contextmanager
def released_after_each(
    owner: type, name: str, read: Callable[..., Iterable[Any]]
) -> Iterator[None]:
    """While inside: after each call of the method ``owner.name``, release the pages of
    the tensors ``read`` (called with the same arguments) says the call read. For an
    upstream routine that reads every weight once (the emitter copying constants, a
    constant folder quantizing them), so that at most one weight's pages are resident.
    Restored on exit; nothing is wrapped when ``owner`` has no such method of its own
    (renamed upstream: the pages are released after the pass instead) or no data file
    is mapped. The caller runs it from one thread (a class attribute is replaced)."""
    original = owner.__dict__.get(name)
    mapped = list(data_file_mappings())
    if original is None or not mapped:
        yield
        return

    def then_release(*args: Any, **kwargs: Any) -> Any:
        value = original(*args, **kwargs)
        for t in read(*args, **kwargs):
            release_tensor(t, mapped)
        return value

    with replaced(owner, name, then_release):
        yield


def _release(start: int, end: int) -> int:
    """``madvise(MADV_DONTNEED)`` on the whole pages of [start, end) if every resident
    one is still the file's; the bytes that were resident (0: nothing done)."""
    first = -(-start // _PAGE) * _PAGE
    last = end // _PAGE * _PAGE
    if last <= first:
        return 0
    resident = _resident_file_pages(first, last)
    if not resident:  # none resident, or one modified (or unreadable): leave it
        return 0
    with contextlib.suppress(OSError, AttributeError):
        madvise = _libc().madvise
        if madvise(first, last - first, MADV_DONTNEED) == 0:
            return resident * _PAGE
    return 0


def _resident_file_pages(first: int, last: int) -> int:
    """How many pages of [first, last) are resident, or 0 when any resident (or swapped)
    page is not the file's own (a private copy: modified) or pagemap cannot be read."""
    used = _used_pages(first, last)
    return len(used) if used is not None and _all_the_files(used) else 0


def unmodified(address: int, size: int) -> bool:
    """The bytes at [address, address + size) of a file mapping are the file's: every page
    of the range this process has resident (or swapped) is still the file's own, none a
    private copy made by a write. False when pagemap cannot be read."""
    first = address // _PAGE * _PAGE
    last = -(-(address + size) // _PAGE) * _PAGE
    used = _used_pages(first, last)
    return used is not None and _all_the_files(used)


def _used_pages(first: int, last: int) -> Any:
    """The pagemap entries of the resident or swapped pages of [first, last) (page
    aligned), or None when pagemap cannot be read."""
    count = (last - first) // _PAGE
    try:
        with open("/proc/self/pagemap", "rb", buffering=0) as f:
            f.seek(first // _PAGE * 8)
            raw = f.read(count * 8)
    except OSError:
        return None
    if len(raw) != count * 8:
        return None
    import numpy as np

    entries = np.frombuffer(raw, dtype="<u8")
    return entries[(entries & np.uint64(_PRESENT | _SWAPPED)) != 0]


def _all_the_files(used: Any) -> bool:
    """Every one of these pagemap entries is a resident page of the mapped file."""
    import numpy as np

    return not ((used & np.uint64(_SWAPPED | _FILE)) != np.uint64(_FILE)).any()


_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        libc.munlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        libc.memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
        libc.memcmp.restype = ctypes.c_int
        _LIBC = libc
    return _LIBC


def _data_file(path: str) -> bool:
    """A regular file that is not an ELF object (remembered per path)."""
    if path not in _is_data:
        from .file_mappings import open_regular

        try:  # a FIFO, a device or an unreadable file: left alone
            with open_regular(path) as f:
                _is_data[path] = f.read(4) != b"\x7fELF"
        except OSError:
            _is_data[path] = False
    return _is_data[path]
