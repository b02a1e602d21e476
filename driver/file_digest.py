"""The sha256 of a written ``.pte``, taken by a process of its own while the run goes on.

A cold run with the cache keeps the ``.pte``'s digest with its full-run entry (a warm
re-run checks the file it writes against it) and, with verification on, keys the
verdict by it. Hashing the program's pieces on the main thread cost 0.1 s at stories
(98 MB), before the runtime loaded the file; on a thread, the hash waited for the GIL
while the main thread released the program and had the runtime load the file (at 135M
parameters, 0.4 s of hashing took 1.9 s, and the run waited for the rest). So
``FileDigest(path)`` opens the file at once (a later rename does not matter) and hands
the open file to a small Python process (``-I -S``: no site, no torch) that hashes it
from disk (the page cache, just written) on the other core and prints the digest;
``result()`` waits for it. Where no such process can be started, a thread hashes it.
No copy of the file is made: ``hashlib.file_digest`` reads it through one small buffer.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

#: The hashing process: reads the inherited descriptor argv[1], prints the hex digest.
_HASHER = (
    "import hashlib, os, sys\n"
    "with os.fdopen(int(sys.argv[1]), 'rb') as f:\n"
    "    print(hashlib.file_digest(f, 'sha256').hexdigest())\n"
)


class FileDigest:
    """sha256 (hex) of the file at ``path`` as it is when this is made."""

    def __init__(self, path: Path) -> None:
        self._value: str | None = None
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        try:
            file = open(path, "rb", buffering=0)  # noqa: SIM115 (closed once handed over)
        except OSError:
            return
        if os.name == "posix" and sys.executable:  # (embedded: no interpreter to start)
            with contextlib.suppress(OSError, ValueError):
                self._process = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _HASHER, str(file.fileno())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    pass_fds=(file.fileno(),),
                )
            if self._process is not None:
                file.close()  # the process has its own descriptor
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
        if self._process is not None:
            out, _ = self._process.communicate()
            digest = out.decode(errors="replace").strip()
            ok = self._process.returncode == 0 and len(digest) == 64
            self._value = digest if ok and all(c in "0123456789abcdef" for c in digest) else None
            self._process = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self._value
