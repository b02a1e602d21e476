from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, ClassVar

import attrs

from pteflow.ir import Level, Program

from ..base import Pass, PassContext, PassInfo, PassResult, option_error
from ..policy import Uncacheable
from .deferred import PendingPte, check_then_rename, pending_list


def write_atomically(
    path: Path,
    data: bytes | Callable[[BinaryIO], None],
    before_commit: Callable[[Path], None] | None = None,
) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file.

    ``data`` is the bytes, or a function that writes them to the open file it is given
    (no contiguous copy of a large output). The bytes go to a temporary file in the same
    directory, are flushed to disk, ``before_commit(temporary path)`` may check them (and
    raise), and the file is renamed over ``path``. On any failure (or Ctrl-C) the
    temporary file is removed and ``path`` is left as it was.
    """
    check_then_rename(write_temporary(path, data), path, before_commit)


def write_temporary(path: Path, data: bytes | Callable[[BinaryIO], None]) -> Path:
    """``data`` in a new file beside ``path`` (a dot-name ending ``.tmp``, the permissions
    a new file gets), flushed to disk; removed again if writing fails or is interrupted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _is_bool(instance: EmitPass, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, bool):
        raise option_error("emit", attribute.name, f"must be true or false, got {value!r}")


def _pte_path(instance: EmitPass, attribute: attrs.Attribute, value: str) -> None:
    if not value or not value.endswith(".pte"):
        raise option_error("emit", attribute.name, f"must be a path ending in .pte, got {value!r}")


def _unloadable(manager: object) -> dict[str, str]:
    """Per method: why the runtime here cannot execute its delegates (none: empty)."""
    from pteflow.ir.runnable import delegates, registered_backends

    have = registered_backends()
    out = {}
    for method, ids in delegates(manager).items():
        absent = [b for b in ids if b not in have]
        if absent:
            out[method] = (
                f"the runtime here has no {', '.join(absent)} "
                f"(registered: {', '.join(sorted(have)) or 'none'})"
            )
    return out


@attrs.frozen
class EmitPass(Pass, Uncacheable):
    """Write the serialized program to a .pte file, atomically, once it loads and runs (last).

    Provides nothing and changes nothing: the file appears whole or not at all. Before the
    file is renamed into place, ExecuTorch's runtime loads the program and every method,
    and (``smoke=true``, the default) executes each method once on its example inputs: a
    missing kernel or dtype variant (``aten::linear.out`` on int8 weights) is an error and
    nothing is written. Methods with delegates the runtime here cannot execute (CoreML,
    Vulkan) are not loaded; the log says so.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="emit",
        level_in=Level.EXECUTORCH,
        last=True,
    )
    not_cacheable_because = "it writes a file: a side effect that must happen every run"
    path: str = attrs.field(default="model.pte", validator=_pte_path)
    smoke: bool = attrs.field(default=True, validator=_is_bool)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        from pteflow.ir.runnable import smoke_run
        from pteflow.ir.serialized import write_pte

        manager = program.artifact
        skip = _unloadable(manager)
        for method, why in sorted(skip.items()):  # reported as verification reports it
            print(f"emit: method {method!r} not loaded here: {why}", file=sys.stderr)
        inputs = program.example_inputs

        def loads_and_runs(tmp: Path) -> None:  # from the file, as a user would (mmap)
            smoke_run(tmp, inputs, execute=self.smoke, skip=tuple(skip))

        path = Path(self.path)
        pending = pending_list()
        if pending is not None:  # the caller checks and renames once it let go of the program
            tmp = write_temporary(path, lambda f: write_pte(manager, f))
            pending.append(PendingPte(path, tmp, loads_and_runs, ctx.position))
            ctx.log(f"wrote {self.path} ({tmp.stat().st_size / 1e6:.2f} MB; loads once released)")
            return PassResult(program, False)
        write_atomically(path, lambda f: write_pte(manager, f), loads_and_runs)
        ctx.log(f"wrote {self.path} ({path.stat().st_size / 1e6:.2f} MB)")
        return PassResult(program, False)
