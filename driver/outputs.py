"""Where a run will write, checked before it does any work.

A path that cannot be written (``/proc/x``, an existing directory where a file
goes, a path under a regular file, a read-only directory) is refused with one
line naming the flag, instead of failing after the whole compile. Checking
writes nothing: the probe file it creates in the target directory is removed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pteflow.ir.errors import UserError


def _existing_ancestor(path: Path) -> Path:
    """``path``'s nearest ancestor (or itself) that exists."""
    here = path.absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    return here


def _probe(directory: Path, flag: str, path: Path) -> None:
    """Create and remove a temporary entry in ``directory`` (what writing needs)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pteflow-probe-", dir=directory)
    except OSError as e:
        raise UserError(
            f"{flag} {path}: cannot write in {directory} ({e.strerror}); choose another path"
        ) from None
    os.close(fd)
    os.unlink(tmp)


def check_file(path: Path, flag: str) -> None:
    """Refuse a file path the run could not write (its missing parents are created).

    Raises:
        UserError: ``path`` is a directory, lies under a non-directory, or its
            directory cannot be written.
    """
    if str(path) == "" or path.is_dir():
        raise UserError(f"{flag} {path}: is a directory; give a file path")
    if path.exists() and not path.is_file():
        raise UserError(f"{flag} {path}: exists and is not a regular file; give a file path")
    anchor = _existing_ancestor(path.parent)
    if not anchor.is_dir():
        raise UserError(f"{flag} {path}: {anchor} is a file, not a directory")
    _probe(anchor, flag, path)


def check_dir(path: Path, flag: str, *, probe: bool = True) -> None:
    """Refuse a directory the run could not create or write into (``probe=False``:
    only refuse one that a file is in the way of).

    Raises:
        UserError: ``path`` is a file, lies under one, or cannot be written.
    """
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: exists and is not a directory")
    anchor = _existing_ancestor(path)
    if not anchor.is_dir():
        raise UserError(f"{flag} {path}: {anchor} is a file, not a directory")
    if probe:
        _probe(anchor, flag, path)


def check_distinct(paths: dict[str, Path]) -> None:
    """Refuse two outputs of one run at the same path (one would overwrite the other)."""
    seen: dict[Path, str] = {}
    for flag, path in paths.items():
        key = path.absolute()
        if key in seen:
            raise UserError(f"{seen[key]} and {flag} are both {path}; give them different paths")
        seen[key] = flag


def check_run(
    passes: Sequence[Any],
    *,
    report: str | None,
    output_given: bool,
    dump_dir: str | None,
    repro_dir: str,
    repro_dir_given: bool,
) -> None:
    """Every path ``driver run`` may write, checked before the first pass: the .pte
    (emit's path), the report, ``--dump-dir`` and ``--repro-dir``.

    The default ``--repro-dir`` (written only when a pass fails) is checked for a
    file in its way, not for write access: a read-only working directory should
    not stop a run that never fails.

    Raises:
        UserError: a path that cannot be written, or two outputs at one path.
    """
    emits = [p for p in passes if p.name == "emit"]
    pte = Path(emits[0].path) if emits else None
    report_path = Path(report) if report else pte.with_suffix(".report.json") if pte else None
    files = {"-o" if output_given else "emit.path": pte, "--report": report_path}
    for flag, path in files.items():
        if path is not None:
            check_file(path, flag)
    dirs = {"--dump-dir": dump_dir, "--repro-dir": repro_dir}
    everything = {**files, **{k: Path(v) for k, v in dirs.items() if v is not None}}
    check_distinct({k: v for k, v in everything.items() if v is not None})
    if dump_dir is not None:
        check_dir(Path(dump_dir), "--dump-dir")
    check_dir(Path(repro_dir), "--repro-dir", probe=repro_dir_given)
