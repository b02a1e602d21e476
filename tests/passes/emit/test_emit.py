from __future__ import annotations

import os
from pathlib import Path

import pytest

from pteflow.passes.emit.emit import EmitPass, write_atomically


def test_emit_writes_the_serialized_program(executorch_mlp, tmp_path):
    out = tmp_path / "sub" / "m.pte"
    result = EmitPass(path=str(out)).apply(executorch_mlp)
    assert not result.modified
    assert out.read_bytes() == executorch_mlp.artifact.buffer
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Boom(Exception):
    pass


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "m.pte"
    target.write_bytes(b"old")

    real_fsync = os.fsync

    def failing_fsync(fd):
        real_fsync(fd)
        raise _Boom("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(_Boom):
        write_atomically(target, b"new contents")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pte"]


def test_a_keyboard_interrupt_leaves_nothing_half_written(tmp_path, monkeypatch):
    target = tmp_path / "new.pte"

    def interrupted(_src, _dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, b"data")
    assert list(Path(tmp_path).iterdir()) == []


def test_emit_makes_no_deserialized_copy_of_the_program(executorch_mlp, tmp_path, monkeypatch):
    """The delegate ids (which methods the runtime here can load) come from the schema
    program the manager holds: deserializing the .pte bytes again made a second copy of
    every weight at emit (+100 MB of peak RSS on a stories-sized Llama, issue 12)."""
    from executorch.exir._serialize import _program

    calls = []
    real = _program.deserialize_pte_binary

    def counting(*args, **kwargs):  # the real function, counted
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_program, "deserialize_pte_binary", counting)
    out = tmp_path / "m.pte"
    EmitPass(path=str(out)).apply(executorch_mlp)
    assert calls == []
    assert out.read_bytes() == executorch_mlp.artifact.buffer
