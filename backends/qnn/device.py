"""Creating the QNN HTP device: QNN's own error line instead of a page of native logs.

ExecuTorch's QnnManager writes QNN's errors from C++ straight to the process's stdout and
stderr (``[ERROR] [Qnn ExecuTorch]:  <E> ...``) and then raises a RuntimeError that only says
"Failed to initialize QNN backend". ``native_output()`` captures both file descriptors around
the manager's creation; ``failure_message()`` turns the capture into one line naming QNN's
first error, the SDK's build id and the QNN version this ExecuTorch was built for.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

from . import sdk


class Captured:
    text = ""

    def replay(self) -> None:
        """Write what was captured to stderr (on success, nothing is hidden)."""
        if self.text:
            sys.stderr.write(self.text)
            sys.stderr.flush()


def _flush_all() -> None:
    import ctypes

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)  # C stdio buffers of the native library


@contextlib.contextmanager
def native_output() -> Iterator[Captured]:
    """Capture what native code writes to fds 1 and 2 in the block into ``Captured.text``."""
    out = Captured()
    _flush_all()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield out
        finally:
            _flush_all()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            out.text = sink.read().decode(errors="replace")


def _qnn_error(text: str) -> str | None:
    """QNN's first ``<E>`` line and the device error code, e.g. '... socModel 0 (14001)'."""
    errors = [ln.split("<E>", 1)[1].strip() for ln in text.splitlines() if "<E>" in ln]
    if not errors:
        errors = [ln.strip() for ln in text.splitlines() if "[ERROR]" in ln]
        errors = [e.split("]:", 1)[-1].strip() for e in errors]
    if not errors:
        return None
    codes = [ln.rsplit("error=", 1)[1].strip() for ln in text.splitlines() if "error=" in ln]
    return errors[0] + (f" (QNN error {codes[0]})" if codes else "")


def failure_message(soc: str, text: str, error: BaseException) -> str:
    """One line: the HTP device could not be created, QNN's reason, and what to use instead."""
    reason = _qnn_error(text) or (str(error).strip().splitlines() or [type(error).__name__])[0]
    build_id = sdk.sdk_build_id() or "unknown build"
    expected = sdk.expected_qnn_version()
    root = sdk.sdk_root()
    mismatch = (
        f"; this executorch was built for QNN {expected}: use Qualcomm's QNN {expected} SDK "
        "as QNN_SDK_ROOT"
        if sdk.version_warning(build_id)
        else ""
    )
    return (
        f"QNN could not create the HTP device for {soc} with the SDK at {root} "
        f"({build_id}): {reason}{mismatch}, or run with --no-delegate for a portable .pte"
    )
