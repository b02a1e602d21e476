"""Which file, at which offset, this process has memory-mapped at an address.

A checkpoint loaded with ``torch.load(..., mmap=True)`` (or safetensors) gives tensors
whose storage is a mapping of the file. Knowing the file range behind an address lets
a caller name the bytes without copying them (a cache link) or read them with
``pread`` instead of through the mapping (``read_range``: the file's pages stay in the
page cache and never join this process's resident set).

Linux only (``/proc/self/maps``); elsewhere no address is mapped.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import os
import stat


class Mappings:
    """The regular files this process has memory-mapped, read once from /proc/self/maps."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._maps: list[tuple[int, int, int, int, str]] = []  # start, end, offset, inode, path
        with contextlib.suppress(OSError):
            with open("/proc/self/maps") as f:
                lines = f.read().splitlines()
            for line in lines:
                fields = line.split(maxsplit=5)
                if len(fields) < 6 or not fields[5].startswith("/") or fields[4] == "0":
                    continue
                start, end = (int(x, 16) for x in fields[0].split("-"))
                self._maps.append((start, end, int(fields[2], 16), int(fields[4]), fields[5]))
        self._maps.sort()
        self._starts = [m[0] for m in self._maps]

    def of_file(self, path: str) -> list[tuple[int, int]]:
        """``(start, end)`` of every mapping of the file ``path`` (as /proc names it: a
        resolved path)."""
        return [(m[0], m[1]) for m in self._maps if m[4] == path]

    def _covering(self, address: int, size: int) -> tuple[int, int, int, int, str] | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0 or size <= 0 or address + size > self._maps[i][1]:
            return None
        return self._maps[i]

    def range_of(self, address: int, size: int) -> tuple[str, int] | None:
        """``(path, offset)`` of the file bytes mapped at ``address`` for ``size`` bytes,
        when one mapping of a file that is still there (same inode) covers them all."""
        found = self._covering(address, size)
        if found is None:
            return None
        start, _end, offset, inode, path = found
        try:
            if os.stat(path).st_ino != inode:
                return None
        except OSError:
            return None
        return path, offset + (address - start)

    def open_range(self, address: int, size: int) -> tuple[io.FileIO, int] | None:
        """The file mapped at ``address`` for ``size`` bytes, opened, with the offset of
        those bytes in it: the very file mapped (its inode checked once open), whatever
        is put in its place later. None: not one mapping of a regular file that is there."""
        found = self._covering(address, size)
        if found is None:
            return None
        start, _end, offset, inode, path = found
        try:
            f = open_regular(path)
        except OSError:
            return None
        if os.fstat(f.fileno()).st_ino != inode:
            f.close()
            return None
        return f, offset + (address - start)


class NotRegularFile(OSError):
    """A path that should name a regular file names something else (a FIFO, a device)."""


def open_regular(path: str) -> io.FileIO:
    """``path`` opened for reading, unbuffered, without blocking on a FIFO or device put in
    a file's place.

    Raises:
        OSError: it cannot be opened; ``NotRegularFile`` when it is not a regular file.
    """
    f = open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb", buffering=0)  # noqa: SIM115
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise NotRegularFile(f"not a regular file: {path}")
    return f


def read_range(path: str, offset: int, size: int) -> bytes | None:
    """``size`` bytes of the regular file ``path`` at ``offset``, read with one ``pread``
    (None when it cannot be read or the read comes back short: the file ends first, or
    the range is beyond what one read returns, ~2 GB)."""
    try:
        with open_regular(path) as f:
            data = os.pread(f.fileno(), size, offset)
    except OSError:
        return None
    return data if len(data) == size else None
