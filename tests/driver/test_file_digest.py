"""The ``.pte``'s digest for the warm store and the verdict is taken from the written file
by a process of its own (a thread where none starts), not from the program's pieces on
the main thread."""

from __future__ import annotations

import hashlib
import subprocess
import threading

from pteflow.driver import file_digest
from pteflow.driver.file_digest import FileDigest
from pteflow.ir import serialized

from .test_cache_cli import compile_mlp


def _counted_sha256(monkeypatch) -> list[str]:
    """The threads that call ``hashlib.sha256`` in this process from now on."""
    threads: list[str] = []
    sha256 = hashlib.sha256

    def seen(*args):
        threads.append(threading.current_thread().name)
        return sha256(*args)

    monkeypatch.setattr(file_digest.hashlib, "sha256", seen)
    return threads


def test_the_digest_is_the_file_as_opened_even_renamed_after(tmp_path, monkeypatch):
    """Hashed by another process (none of it in this one, so the GIL the run holds
    does not slow it), from the file as it was opened."""
    path = tmp_path / "a.pte"
    data = bytes(range(256)) * 41
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    threads = _counted_sha256(monkeypatch)
    digest = FileDigest(path)
    path.rename(tmp_path / "b.pte")
    (tmp_path / "b.pte").unlink()  # the open file is still the one hashed
    assert digest.result() == expected
    assert digest.result() == expected  # asked again: the same, nothing waited for
    assert threads == []
    assert FileDigest(tmp_path / "missing.pte").result() is None


def test_where_no_process_starts_a_thread_hashes_it(tmp_path, monkeypatch):
    path = tmp_path / "a.pte"
    data = b"pte" * 5000
    path.write_bytes(data)

    def refuse(*args, **kwargs):
        raise OSError("no process left")

    expected = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(subprocess, "Popen", refuse)
    threads = _counted_sha256(monkeypatch)
    assert FileDigest(path).result() == expected
    assert threads == ["pteflow-pte-digest"]


def test_without_an_interpreter_to_start_a_thread_hashes_it(tmp_path, monkeypatch):
    """An embedded Python has no ``sys.executable``: the thread hashes it."""
    path = tmp_path / "a.pte"
    data = b"pte" * 5000
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(file_digest.sys, "executable", "")
    threads = _counted_sha256(monkeypatch)
    assert FileDigest(path).result() == expected
    assert threads == ["pteflow-pte-digest"]


def test_a_hasher_that_fails_gives_no_digest(tmp_path, monkeypatch):
    """A digest that cannot be trusted is none (the full run is then not stored)."""
    path = tmp_path / "a.pte"
    path.write_bytes(b"x" * 100)
    monkeypatch.setattr(file_digest, "_HASHER", "import sys; print('not-a-digest'); sys.exit(3)")
    assert FileDigest(path).result() is None
    monkeypatch.setattr(file_digest, "_HASHER", "print('ab' * 32)")
    assert FileDigest(path).result() == "ab" * 32  # (what the process said is used)


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
