"""The ``.pte``'s digest for the warm store and the verdict is taken from the written file
on a thread of its own, not from the program's pieces on the main thread."""

from __future__ import annotations

import hashlib
import threading

from pteflow.driver import file_digest
from pteflow.driver.file_digest import FileDigest
from pteflow.ir import serialized

from .test_cache_cli import compile_mlp


def test_the_digest_is_the_file_as_opened_even_renamed_after(tmp_path, monkeypatch):
    path = tmp_path / "a.pte"
    data = bytes(range(256)) * 41
    path.write_bytes(data)
    threads: list[str] = []
    sha256 = hashlib.sha256

    def seen(*args):
        threads.append(threading.current_thread().name)
        return sha256(*args)

    monkeypatch.setattr(file_digest.hashlib, "sha256", seen)
    digest = FileDigest(path)
    path.rename(tmp_path / "b.pte")
    assert digest.result() == sha256(data).hexdigest()
    assert threads == ["pteflow-pte-digest"]
    assert FileDigest(tmp_path / "missing.pte").result() is None


def test_a_cold_run_does_not_hash_the_program_for_its_full_run_entry(capsys, tmp_path, monkeypatch):
    """The full-run entry's digest is the written file's (a warm run checks what it
    writes against it), and the program's pieces were not hashed for it."""
    calls: list[str] = []
    pieces = serialized.pte_sha256

    def counted(manager):
        calls.append(threading.current_thread().name)
        return pieces(manager)

    monkeypatch.setattr(serialized, "pte_sha256", counted)
    cache = tmp_path / "cache"
    code, _out, err = compile_mlp(capsys, tmp_path, "m.pte", "--cache-dir", str(cache), "--verify")
    assert code == 0, err
    assert calls == []
    code, out, err = compile_mlp(capsys, tmp_path, "n.pte", "--cache-dir", str(cache), "--verify")
    assert code == 0, err
    assert "full hit" in out and "[verified (cached)]" in out  # the digests agreed
    assert (tmp_path / "n.pte").read_bytes() == (tmp_path / "m.pte").read_bytes()
