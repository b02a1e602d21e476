"""Tensors stored once by content (blobs), the background writer, and what they guarantee:
a small cache, shared blob files, a missing or altered blob is a miss (never a wrong
program), an interrupted write leaves no visible entry."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pteflow.passes.cache import PassCache
from pteflow.passes.cache.writer import Writer

from ...driver._helpers import MODELS, ctrl_c_at_marker, run

PASSES = "export,to-edge,partition-xnnpack,to-executorch,emit"


def compile_mlp(
    capsys, tmp_path: Path, name: str, cache: Path, passes: str = PASSES
) -> tuple[int, str, str]:
    return run(
        capsys,
        "run",
        "--model",
        f"{MODELS}:mlp",
        "--passes",
        passes,
        "-o",
        str(tmp_path / name),
        "--cache-dir",
        str(cache),
    )


def entry_blobs(cache: Path) -> dict[str, dict[str, int]]:
    """Each entry's blob references, from its (authenticated) header."""
    pc = PassCache(cache)
    out = {}
    for path in (cache / "entries").glob("*/*.entry"):
        header = pc.read_header(path.stem)
        assert header is not None
        out[path.stem] = header.get("blobs") or {}
    return out


def hashed_in_blobs(monkeypatch) -> list[int]:
    """The ids of the byte strings (``MIN_BLOB`` or more) ``blobs.py`` will sha256."""
    from pteflow.passes.cache import blobs

    hashed: list[int] = []

    class Counting:
        def __getattr__(self, name):
            return getattr(hashlib, name)

        @staticmethod
        def sha256(data=b"", **kwargs):
            if type(data) is bytes and len(data) >= blobs.MIN_BLOB:
                hashed.append(id(data))
            return hashlib.sha256(data, **kwargs)

    monkeypatch.setattr(blobs, "hashlib", Counting())
    return hashed


def blob_files(cache: Path) -> list[Path]:
    return [p for p in (cache / "blobs").glob("*/*") if not p.name.startswith(".")]


def test_entries_share_blob_files_and_info_shows_it(capsys, tmp_path):
    cache = tmp_path / "cache"
    code, _out, err = compile_mlp(capsys, tmp_path, "a.pte", cache)
    assert code == 0, err
    refs = entry_blobs(cache)
    referenced = [d for r in refs.values() for d in r]
    # the weights are referenced by the ATEN, EDGE and EXECUTORCH entries, stored once
    assert len(referenced) > len(set(referenced)) >= 2
    files = blob_files(cache)
    assert {p.name for p in files} == set(referenced)
    assert len({p.stat().st_ino for p in files}) == len(files)
    shared = sum(size for r in refs.values() for size in r.values())
    shared -= sum(p.stat().st_size for p in files)
    assert shared > 0
    code, out, _ = run(capsys, "cache", "info", "--cache-dir", str(cache))
    assert code == 0
    assert f"blobs: {len(files)} (" in out
    assert f"shared: {shared / 2**20:.2f} MiB" in out
    # a second identical run adds no blob and restores the same .pte
    code, out, err = compile_mlp(capsys, tmp_path, "b.pte", cache)
    assert code == 0, err
    assert "restored from the pass cache" in out
    assert sorted(p.name for p in blob_files(cache)) == sorted(p.name for p in files)
    assert (tmp_path / "a.pte").read_bytes() == (tmp_path / "b.pte").read_bytes()


@pytest.fixture
def closed_writers(monkeypatch, writer_kind) -> list:
    """The cache writers closed during the test (of the kind ``writer_kind`` chose)."""
    from pteflow.passes.cache.forked import ForkedWriter
    from pteflow.passes.cache.writer import Writer

    kind = ForkedWriter if writer_kind == "fork" else Writer
    closed: list = []
    real = kind.close

    def noted(self, **kwargs):
        real(self, **kwargs)
        closed.append(self)

    monkeypatch.setattr(kind, "close", noted)
    return closed


def test_the_writer_puts_each_blob_once_however_many_entries_hold_it(
    capsys, tmp_path, monkeypatch, writer_kind, closed_writers
):
    """The weights are in every entry from export on; the writer makes each blob present
    once a run, not once per entry (each put stats, refreshes or rewrites it). Forked
    children report the blobs they put (``puts``), and each child knows its
    predecessors'; the thread writer's puts are counted here."""
    import threading

    from pteflow.passes.cache.blobs import BlobDir

    puts: list[str] = []
    real = BlobDir.put

    def counted(self, digest, data):
        if threading.current_thread().name == "pteflow-cache":  # not the warm store's
            puts.append(digest)
        return real(self, digest, data)

    monkeypatch.setattr(BlobDir, "put", counted)
    code, _out, err = compile_mlp(capsys, tmp_path, "a.pte", tmp_path / "cache")
    assert code == 0, err
    referenced = [d for r in entry_blobs(tmp_path / "cache").values() for d in r]
    assert len(referenced) > len(set(referenced))  # shared between entries
    if writer_kind == "fork":
        assert not puts  # none in this process
        puts = [d for w in closed_writers for d in w.puts]
    assert sorted(puts) == sorted(set(referenced))  # each put once


def test_a_closed_writer_holds_no_payload(capsys, tmp_path, closed_writers):
    """The digests the writer remembers (by id, holding the bytes: delegate payloads,
    named data; the cache's, which the writer thread or the forked children's reports
    fill) are let go once the full-run entry is prepared: they kept the payloads alive
    while the runtime loaded the .pte, on top of its peak. (A forked writer's jobs hold
    no program: its encoder is dropped once the child is forked.)"""
    code, _out, err = compile_mlp(capsys, tmp_path, "a.pte", tmp_path / "cache")
    assert code == 0, err
    closed = closed_writers
    assert closed and all(not w.cache.digests for w in closed)
    assert all(not w._digests for w in closed if isinstance(w, Writer))
    assert all(
        job.value is None and job.encode is None and job.held is None
        for w in closed
        for job in w._jobs
    )
    assert closed[0].stored > 0


def test_a_delegate_payload_is_hashed_once(capsys, tmp_path, monkeypatch, writer_kind):
    """A forked child's digests of the payloads its program held come back to the run:
    neither the next child nor the full-run entry (prepared in the run's process) hashes
    the payload again, so this process hashes no payload at all; the thread writer hashes
    each here once (the full-run entry takes its digests). The digests are right: the
    re-run is a full hit that writes the same bytes."""
    hashed = hashed_in_blobs(monkeypatch)  # (payloads alive through the run: ids are theirs)
    cache = tmp_path / "cache"
    code, _out, err = compile_mlp(capsys, tmp_path, "a.pte", cache)
    assert code == 0, err
    if writer_kind == "fork":
        assert hashed == []
    else:  # the writer thread's, each once: the full-run entry uses its digests
        assert hashed and len(hashed) == len(set(hashed))
    code, out, err = run(
        capsys, "run", "--model", f"{MODELS}:mlp", "--passes", PASSES,
        "-o", str(tmp_path / "b.pte"), "--cache-dir", str(cache), "-v",
    )  # fmt: skip
    assert code == 0, err
    assert "full hit" in out
    assert (tmp_path / "a.pte").read_bytes() == (tmp_path / "b.pte").read_bytes()


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_a_missing_or_altered_blob_is_a_miss_with_a_warning(capsys, tmp_path, damage):
    cache = tmp_path / "cache"
    code, _out, err = compile_mlp(capsys, tmp_path, "a.pte", cache)
    assert code == 0, err
    for blob in blob_files(cache):  # every weight: no entry can be restored as it was
        if damage == "delete":
            blob.unlink()
        else:
            data = bytearray(blob.read_bytes())
            data[len(data) // 2] ^= 0xFF
            blob.write_bytes(bytes(data))
    # emit's options differ from the first run's: not a full hit of it (whose small .pte
    # holds no blob), so every pass entry is read, and none can be restored as it was
    other = PASSES.replace("emit", "emit{smoke=false}")
    code, out, err = compile_mlp(capsys, tmp_path, "b.pte", cache, other)
    assert code == 0, err
    assert "missing" in err if damage == "delete" else "corrupt (checksum mismatch)" in err
    assert "recomputing it" in err
    assert "restored from the pass cache" not in out
    assert (tmp_path / "a.pte").read_bytes() == (tmp_path / "b.pte").read_bytes()
    # the recomputation stored the blobs again: every entry's blobs are there and whole
    pc = PassCache(cache)
    for refs in entry_blobs(cache).values():
        for digest, size in refs.items():
            pc.blobs.read(digest, size)
    code, out, err = compile_mlp(capsys, tmp_path, "c.pte", cache, other)
    assert code == 0 and "restored from the pass cache" in out and "pass cache:" not in err


INTERRUPTED = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pteflow.passes.cache import store

    marker, cache, pte = sys.argv[1:4]
    real = store.write_parts

    def write_parts(f, parts):
        # partition-xnnpack's entry (written by a forked child or the writer thread):
        # half of it on disk, then stuck
        if b'"pass": "partition-xnnpack"' in parts[0]:
            data = b"".join(parts)
            f.write(data[: len(data) // 2])
            f.flush()
            Path(marker).write_text("writing")
            time.sleep(600)
        real(f, parts)

    store.write_parts = write_parts
    from pteflow.driver.cli import main

    sys.exit(main(["run", "--model", sys.argv[4], "--passes", sys.argv[5], "-o", pte,
                   "--cache-dir", cache, "--no-verify"]))
    """
)


def test_sigint_while_the_writer_writes_leaves_no_visible_half_entry(tmp_path, writer_kind):
    marker, cache = tmp_path / "writing", tmp_path / "cache"
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    args = [str(marker), str(cache), str(tmp_path / "a.pte"), f"{MODELS}:mlp", PASSES]
    code = ctrl_c_at_marker(
        [sys.executable, str(script), *args],
        marker,
        timeout=300,
        never="the writer never reached partition-xnnpack's entry",
    )
    assert code != 0
    assert not list((cache / "entries").glob("*/.*.tmp")), "temporary files left behind"
    pc = PassCache(cache)
    visible = {}
    for path in (cache / "entries").glob("*/*.entry"):  # every visible entry is whole
        header, _payload = pc.read(path.stem)
        for digest, size in (header.get("blobs") or {}).items():
            pc.blobs.read(digest, size)  # its blobs too
        visible[header["pass"].split("{")[0]] = header
    # export's and to-edge's programs; not partition-xnnpack's, half written
    programs = sorted(name for name, header in visible.items() if header.get("payload_bytes"))
    assert programs == ["export", "to-edge"], visible
    # the parent goes on while the child is stuck: to-executorch's key (header only, cheaper
    # to run again) may be visible by the time the Ctrl-C lands; it restores nothing
    assert set(visible) <= {"export", "to-edge", "to-executorch"}, visible


@pytest.mark.slow
def test_tiny_llama_cache_is_about_the_size_of_its_pte(tmp_path):
    """Each pass used to store its own copy of every tensor: the cache of one tiny
    xnnpack_default run was ~16x its .pte (on main); the weights are now stored once."""
    cache, pte = tmp_path / "cache", tmp_path / "tiny.pte"
    cmd = [sys.executable, "-m", "pteflow.driver", "run", "--pipeline", "xnnpack_default"]
    cmd += ["-o", str(pte), "--cache-dir", str(cache), "--no-verify"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    assert size <= 1.5 * pte.stat().st_size, (size, pte.stat().st_size)
    warm = tmp_path / "warm.pte"
    cmd[cmd.index(str(pte))] = str(warm)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cached: 9 of 9 passes restored" in done.stdout  # a full hit
    assert "full hit" in done.stdout
    assert warm.read_bytes() == pte.read_bytes()


def test_a_copy_of_a_weight_is_stored_under_its_digest_without_hashing_it(tmp_path, monkeypatch):
    """XNNPACK's named data are the delegated weights' bytes: the blob pickler takes the
    digest the run's key remembered for the weight (compared, ``ir.known_bytes``); a byte
    string no weight holds is hashed, as before. The blob read back is checked against its
    digest, so a wrong one could not pass."""
    import torch

    from pteflow.ir import hashing
    from pteflow.passes.cache import blobs

    weight = torch.randn(256, 256)
    digest = hashing.tensor_digest(weight)
    copy = bytes(hashing.raw_bytes(weight))
    other = bytes(reversed(copy))
    hashed = hashed_in_blobs(monkeypatch)
    cache = PassCache(tmp_path / "cache")
    value = {"named": [copy, other]}
    payload, sizes = blobs.dumps(value, cache.blobs.put, {}, [copy, other])
    assert hashed == [id(other)]
    assert sizes == {digest: len(copy), hashlib.sha256(other).hexdigest(): len(other)}
    assert blobs.loads(payload, cache.blobs) == value
