"""A run's first key: the input program's hash, its weights' digests taken while the
first passes run when the cache cannot hold an entry for this input.

    key_0 = sha256(the input's structure with each weight as a token #i,
                   the digest of weight #0, #1, ...)

Every later key chains from it (``keys.py``), so nothing can be looked up before it is
known: at Llama-3.2-1B's shapes that is 5.7 GB of weights to hash (2.4 s on two threads)
before the first pass starts. Most runs need no look-up: a checkpoint exported for the
first time has no entries, and its keys are needed only when a result is stored. So the
cache keeps a marker per input it stored entries for, named by the input's structure
and a sample of each weight (``SAMPLE`` bytes at each end: two checkpoints of one
architecture differ there). With no marker for this input the run is cold for sure,
and it does not wait: the weights that are ranges of a memory-mapped file whose pages
were never written to (a checkpoint loaded with ``mmap=True``) are hashed from that
file, opened now (the very file mapped: its inode is checked) and read with ``preadv``
on a thread while the passes run. Those bytes are the weights' as they were when the
structure was hashed, whatever a pass does to them later, and the reads never join the
process's resident set. The other weights are hashed at once, as before. The session
stages the first passes' EAGER results (keys without payload) once the key is known;
the first result with a payload waits for it (``result()``: the main thread helps).
With a marker (a re-run, or a run sharing a prefix with one), every digest is taken at
once and the cache is read as before. A lost marker only loses hits; a stale one only
makes a run wait for its key, as every run did before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pteflow.ir import hashing, tensor_digests

#: Bytes of each end of a weight that name an input with its structure (the markers).
SAMPLE = 64 << 10
#: Weights smaller than this are hashed at once (a thread's hand-over costs more).
DEFERRED_FROM = 1 << 20
#: The file is read and hashed this much at a time: the thread takes the GIL back after
#: each read and each update, and waits up to the switch interval (5 ms) for it while
#: the first pass runs Python (1 MB pieces ran at a fifth of sha256's speed).
PIECE = 32 << 20
#: The markers' directory in the cache directory, and how many it keeps (the oldest go).
MARKERS = "inputs"
MAX_MARKERS = 4096


class InputKey:
    """key_0 of ``program`` (see the module docstring); ``seen``: this cache holds a
    marker for the input (its entries are worth looking up).

    Raises:
        Unhashable: some part of the program cannot be hashed faithfully.
    """

    def __init__(self, program: Any, directory: Path, mkdir: Callable[[Path], None]):
        with hashing.tensors_as_tokens() as tensors:
            self._walk = hashing.program_hash(program)
        self._tensors = tensors
        self._stamps = [tensor_digests.stamp(t) for t in tensors]
        self._digests: list[str | None] = [None] * len(tensors)
        self._value: str | None = None
        self.marker = directory / MARKERS / self._sampled()
        self._mkdir = mkdir  # (the cache's: private directories)
        self.seen = self.marker.exists()
        self._todo: list[tuple[int, int, int, int]] = []  # (index, descriptor, offset, size)
        self._files: list[Any] = []  # (open until every digest is taken)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if not self.seen:
            self._todo, self._files = _file_ranges(tensors)
            self._todo.sort(key=lambda job: job[3])  # popped from the end: biggest first
        deferred = {job[0] for job in self._todo}
        # a weight met again (tied embeddings): its first place's digest, not its bytes now
        first = {id(tensors[i]): i for i in sorted(deferred)}
        self._again = {
            i: first[id(t)] for i, t in enumerate(tensors) if id(t) in first and first[id(t)] != i
        }
        deferred |= self._again.keys()
        if self._todo:
            self._thread = threading.Thread(
                target=self._work, name="pteflow-input-digests", daemon=True
            )
            self._thread.start()
        # the others now: the first pass may change them, and only a file keeps old bytes
        self._take_from_memory([i for i in range(len(tensors)) if i not in deferred])

    def _sampled(self) -> str:
        h = hashlib.sha256(f"{self._walk}\0".encode())
        for t in self._tensors:
            if tensor_digests.plain_cpu(t) and t.is_contiguous():
                data = tensor_digests.raw_bytes(t)
                h.update(f"{data.nbytes}:".encode())
                h.update(data[:SAMPLE])
                h.update(data[max(SAMPLE, data.nbytes - SAMPLE) :])
            else:  # (rare: hashed whole now, remembered for the key)
                h.update(tensor_digests.tensor_digest(t).encode())
        return h.hexdigest()

    def _work(self) -> None:
        """Take the digests of the file ranges left, biggest first (a thread, and the main
        thread in ``result``); one that cannot be read is taken from memory after."""
        while True:
            with self._lock:
                if not self._todo:
                    return
                index, fd, offset, size = self._todo.pop()
            self._digests[index] = _read_digest(fd, offset, size)

    def ready(self) -> bool:
        """``result()`` would not wait."""
        return self._value is not None or self._thread is None or not self._thread.is_alive()

    def result(self) -> str:
        """key_0, once every digest is taken (waits for the thread, helping it).

        Raises:
            Unhashable: a weight that could not be read from its file was changed in
                place since the structure was hashed (its bytes then are gone).
        """
        if self._value is not None:
            return self._value
        if self._thread is not None:
            self._work()
            self._thread.join()
            self._thread = None
        for f in self._files:
            f.close()
        self._files = []
        for i, j in self._again.items():
            self._digests[i] = self._digests[j]
        for i, t in enumerate(self._tensors):  # read from the file: the weight's own
            digest = self._digests[i]
            if digest is not None:
                tensor_digests.remember(t, digest, self._stamps[i])
        self._take_from_memory([i for i, d in enumerate(self._digests) if d is None])
        h = hashlib.sha256(f"pteflow-input\0{self._walk}\0".encode())
        for digest in self._digests:
            h.update(f"{digest}\0".encode())
        self._value = h.hexdigest()
        self._tensors = []  # (the digests stay; the weights are not held)
        return self._value

    def _take_from_memory(self, indices: list[int]) -> None:
        """The digests of the weights at ``indices`` from their bytes in memory, which must
        be the ones the structure was hashed with."""
        tensors = [self._tensors[i] for i in indices]
        for i, t in zip(indices, tensors, strict=True):
            if tensor_digests.stamp(t) != self._stamps[i]:
                raise hashing.Unhashable(
                    f"a weight ({tuple(t.shape)}) was changed in place before its digest was taken"
                )
        tensor_digests.digests_in_parallel(tensors)
        for i, t in zip(indices, tensors, strict=True):
            self._digests[i] = tensor_digests.tensor_digest(t)

    def mark(self) -> None:
        """Record that this cache holds entries for the input (best effort)."""
        with contextlib.suppress(OSError):
            self._mkdir(self.marker.parent)
            self.marker.touch()
        self.seen = True


def prune_markers(directory: Path, keep: int | None = None) -> None:
    """Remove the oldest markers over ``keep`` (``MAX_MARKERS``): an input's marker is
    touched by every run that stores entries for it; a pruned one only costs its next
    run the look-up (best effort)."""
    keep = MAX_MARKERS if keep is None else keep
    try:
        markers = list(os.scandir(directory / MARKERS))
    except OSError:
        return
    if len(markers) <= keep:
        return
    with_times = []
    for entry in markers:
        with contextlib.suppress(OSError):
            with_times.append((entry.stat().st_mtime, entry.path))
    for _mtime, path in sorted(with_times)[: len(with_times) - keep]:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _file_ranges(tensors: list[Any]) -> tuple[list[tuple[int, int, int, int]], list[Any]]:
    """``(index, descriptor, offset, size)`` of each weight of ``tensors`` whose bytes are a
    range of a mapped file, none of whose pages was written to (its bytes are the file's),
    and the files opened for them (one per file)."""

    from pteflow.ir import mapped_pages
    from pteflow.ir.file_mappings import Mappings

    mappings = None
    out = []
    files: dict[tuple[int, int], Any] = {}
    seen: set[int] = set()
    for i, t in enumerate(tensors):
        if not tensor_digests.plain_cpu(t) or not t.is_contiguous() or t.nbytes < DEFERRED_FROM:
            continue
        if id(t) in seen or tensor_digests.remembered_digest(t) is not None:
            continue
        mappings = mappings or Mappings()
        address, size = t.data_ptr(), t.nbytes
        opened = mappings.open_range(address, size)
        if opened is None:
            continue
        f, offset = opened
        st = os.fstat(f.fileno())
        same = files.setdefault((st.st_dev, st.st_ino), f)
        if same is not f:
            f.close()
        if mapped_pages.unmodified(address, size):
            seen.add(id(t))
            out.append((i, same.fileno(), offset, size))
    return out, list(files.values())


def _read_digest(fd: int, offset: int, size: int) -> str | None:
    """sha256 of ``size`` bytes of the open file ``fd`` at ``offset`` in ``PIECE`` reads;
    None when the file ends first or cannot be read."""
    from .file_ranges import LinkMismatch, descriptor_digest

    try:
        return descriptor_digest(fd, offset, size, piece=PIECE)
    except (LinkMismatch, OSError):
        return None
