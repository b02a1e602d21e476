"""A Ctrl-C (or SIGTERM) that upstream code swallowed still stops the run.

Python raises ``KeyboardInterrupt`` wherever the main thread is when SIGINT arrives. Code
that catches broad exceptions can lose it: when it lands while a pybind11 module
initializes (ExecuTorch's runtime loads its kernel libraries the first time a program is
checked), pybind11 turns it into ``ImportError: initialization failed``, which an optional
import's ``except`` swallows or which surfaces as a traceback. The run then went on as if
nothing was pressed, waited for the cache writer, and stored a result made while a
library failed to load.

``noticed()`` (the driver's commands run inside it) wraps the SIGINT and SIGTERM handlers
so that each signal is recorded before its handler raises; ``check()`` raises it again. The
pass manager checks after every pass, before the pass's result is staged for the cache,
and before waiting for the cache writer; an exception that leaves ``noticed()`` after a
signal is reported as the interrupt it hides. Outside ``noticed()`` (an API caller's own
handlers) nothing changes: ``check()`` never raises.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

_requested: list[type[BaseException]] = []  # the exception the signal's handler raised


def check() -> None:
    """Raise the interrupt a signal asked for, if one was received (and swallowed)."""
    if _requested:
        raise _requested[0]()


def requested() -> bool:
    return bool(_requested)


def _recording(previous: Callable[[int, Any], Any]) -> Callable[[int, Any], Any]:
    def handler(signum: int, frame: Any) -> Any:
        try:
            return previous(signum, frame)
        except BaseException as e:
            if not _requested:
                _requested.append(type(e))
            raise

    return handler


@contextlib.contextmanager
def noticed() -> Iterator[None]:
    """Record SIGINT and SIGTERM while the block runs (main thread, Python handlers only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if callable(previous):
            saved[sig] = signal.signal(sig, _recording(previous))
    _requested.clear()
    try:
        yield
    except BaseException as e:
        if _requested and not isinstance(e, _requested[0]):
            raise _requested[0]() from e  # the error is the interrupt's doing
        raise
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)
        _requested.clear()
