"""Hand the heap's free pages back to the system (glibc's ``malloc_trim``).

``free`` shrinks the heap only from its top: memory freed in pieces small enough to come
from the heap (payloads, serialized graphs, the objects serde builds) stays resident, and
a later peak is measured on top of it. Elsewhere (not glibc) there is nothing to ask.
"""

from __future__ import annotations

import contextlib
import ctypes


def return_freed_memory() -> None:
    """``malloc_trim(0)``: every arena's free pages go back; live memory is untouched."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
