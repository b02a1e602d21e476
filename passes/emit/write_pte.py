from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import ClassVar

import attrs

from pteflow.ir import Level, Program

from ..base import Pass, PassContext, PassInfo, PassResult, option_error


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file.

    The bytes go to a temporary file in the same directory, are flushed to
    disk, and the file is renamed over ``path``. On any failure (or Ctrl-C)
    the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pte_path(instance: EmitPass, attribute: attrs.Attribute, value: str) -> None:
    if not value or not value.endswith(".pte"):
        raise option_error("emit", attribute.name, f"must be a path ending in .pte, got {value!r}")


@attrs.frozen
class EmitPass(Pass):
    """Write the serialized program to a .pte file, atomically (runs last).

    Provides nothing and changes nothing: the file appears whole or not at all.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="emit",
        level_in=Level.EXECUTORCH,
        last=True,
        cacheable=False,
        not_cacheable_because="it writes a file: a side effect that must happen every run",
    )
    path: str = attrs.field(default="model.pte", validator=_pte_path)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        data = program.artifact.buffer
        write_atomically(Path(self.path), data)
        ctx.log(f"wrote {self.path} ({len(data) / 1e6:.2f} MB)")
        return PassResult(program, False)
