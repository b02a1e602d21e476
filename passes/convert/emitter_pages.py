"""The emitter reads each constant once, without the checkpoint's pages joining memory.

ExecuTorch's emitter copies every constant tensor's bytes into the program it builds
(``_Emitter._tensor_spec_to_evalue``: ``bytes`` of a ``ctypes`` view of the storage). For
a weight that is still the memory-mapped checkpoint's (the embedding table and the norms
of an XNNPACK Llama; every weight of a portable one), reading it through the mapping
faults the file's pages into this process while the copy is made: at stories' shapes
the embedding twice, the run's peak. While ``to_executorch`` runs:

- the copy of a view that lies wholly in a data file's mapping, none of whose pages was
  written to (``mapped_pages.unmodified``: its bytes are the file's), is read from the
  file with ``pread`` (``file_mappings.read_range``): the same bytes, through the page
  cache, and the mapping is never touched;
- any constant's file pages the emitter did read are handed back as soon as it has its
  copy (``mapped_pages.released_after_each``: only pages never modified).

Nothing the emitter computes changes. The names are upstream's private ones, swapped for
the duration of the call (pteflow converts from one thread) and restored after: the
module's ``bytes`` (its only call of it is that copy in ExecuTorch 1.5.1,
``CHECKED_RELEASE``; other releases keep the builtin) and the method; if a later
ExecuTorch renames the method, nothing is wrapped and the pages are handed back after
the pass instead.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
from collections.abc import Callable, Iterator
from typing import Any

#: The ExecuTorch release whose emitter's one ``bytes`` call is the constant copy.
CHECKED_RELEASE = "1.5.1"

#: Below this a copy is read through the mapping as upstream does (a syscall per norm
#: weight would cost more than the page it saves).
_READ_FROM_FILE_AT = 1 << 20


@contextlib.contextmanager
def constants_pages_released() -> Iterator[None]:
    """While converting: constants copied from the file where they are its bytes, and each
    constant's file pages released once the emitter copied it."""
    from pteflow.ir import mapped_pages
    from pteflow.ir.replaced import replaced

    try:
        from executorch.exir.emit import _emitter
    except ImportError:
        yield
        return
    with contextlib.ExitStack() as stack:
        if _copies_bytes_once():
            stack.enter_context(replaced(_emitter, "bytes", _file_reader()))
        stack.enter_context(
            mapped_pages.released_after_each(_emitter._Emitter, "_tensor_spec_to_evalue", _copied)
        )
        yield


def _copies_bytes_once() -> bool:
    """Whether the installed emitter is the one whose only ``bytes`` call is the constant
    copy (the release it was read in)."""
    from pteflow.ir.replaced import installed_is

    return installed_is("executorch", CHECKED_RELEASE)


def _file_reader() -> Callable[..., bytes]:
    """``bytes`` that reads a ``ctypes`` array lying in an unmodified file mapping from the
    file; anything else is the builtin's."""
    from pteflow.ir import file_mappings, mapped_pages

    mappings = file_mappings.Mappings()

    def copy(*args: Any, **kwargs: Any) -> bytes:
        if len(args) == 1 and not kwargs and isinstance(args[0], ctypes.Array):
            address, size = ctypes.addressof(args[0]), ctypes.sizeof(args[0])
            found = mappings.range_of(address, size) if size >= _READ_FROM_FILE_AT else None
            if found is not None and mapped_pages.unmodified(address, size):
                data = file_mappings.read_range(found[0], found[1], size)
                if data is not None:
                    return data
        return builtins.bytes(*args, **kwargs)

    return copy


def _copied(self: Any, spec: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """The storage the emitter copied for ``spec`` (a constant's), if any."""
    storage = getattr(spec, "storage", None) if getattr(spec, "const", False) else None
    return [] if storage is None else [storage]
