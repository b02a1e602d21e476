"""The sha256 of a written ``.pte``, taken on a thread of its own while the run goes on.

A cold run with the cache keeps the ``.pte``'s digest with its full-run entry (a warm
re-run checks the file it writes against it) and, with verification on, keys the
verdict by it. Hashing the program's pieces on the main thread cost 0.1 s at stories
(98 MB), before the runtime loaded the file. ``FileDigest(path)`` opens the file at once
(a later rename does not matter) and hashes it from disk (the page cache, just written)
on a thread: ``hashlib`` and the reads release the GIL, and the main thread meanwhile
releases the program and has the runtime load the file. ``result()`` waits for it.
No copy of the file is made: ``hashlib.file_digest`` reads it through one small buffer.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from pathlib import Path


class FileDigest:
    """sha256 (hex) of the file at ``path`` as it is when this is made."""

    def __init__(self, path: Path) -> None:
        self._value: str | None = None
        self._thread: threading.Thread | None = None
        try:
            file = open(path, "rb", buffering=0)  # noqa: SIM115 (the thread closes it)
        except OSError:
            return
        self._thread = threading.Thread(
            target=self._hash, args=(file,), name="pteflow-pte-digest", daemon=True
        )
        self._thread.start()

    def _hash(self, file: io.FileIO) -> None:
        with file as f, contextlib.suppress(OSError):  # a read error: None
            self._value = hashlib.file_digest(f, hashlib.sha256).hexdigest()

    def result(self) -> str | None:
        """The digest (None: the file could not be read)."""
        if self._thread is not None:
            self._thread.join()
        return self._value
