"""Blobs of a memory-mapped checkpoint's tensors are links to the file, not copies; a link
whose file changed, vanished, or never held the tensor's bytes is never used as one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pteflow.passes.cache import PassCache, blobs, pte_split
from pteflow.testing import write_random_checkpoint


@pytest.fixture
def mapped(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A checkpoint file and its tensors loaded memory-mapped (their bytes are the file's)."""
    path = tmp_path / "weights.pth"
    gen = torch.Generator().manual_seed(0)
    torch.save(
        {"a": torch.randn(64, 32, generator=gen), "b": torch.randn(4096, generator=gen)}, path
    )
    return path, torch.load(path, mmap=True, weights_only=True)


def _dump(cache: PassCache, value) -> tuple[bytes, dict[str, int]]:
    return blobs.dumps(value, cache.blobs.put, {})


def _kinds(cache: PassCache) -> tuple[list[Path], list[Path]]:
    files = [p for p in (cache.directory / "blobs").glob("*/*") if not p.name.startswith(".")]
    return [p for p in files if p.suffix != ".link"], [p for p in files if p.suffix == ".link"]


def test_mapped_tensors_are_linked_not_copied_and_read_back_equal(tmp_path, mapped):
    path, weights = mapped
    cache = PassCache(tmp_path / "cache")
    payload, sizes = _dump(cache, weights)
    copies, links = _kinds(cache)
    assert copies == [] and len(links) == 2  # nothing of the weights is in the cache
    assert sum(p.stat().st_size for p in links) < 1024
    assert all(str(path) in p.read_text() for p in links)
    assert sizes == {blobs.hashing.tensor_digest(t): t.nbytes for t in weights.values()}
    back = blobs.loads(payload, cache.blobs)
    for name, t in weights.items():
        assert torch.equal(back[name], t)
        assert back[name].untyped_storage().data_ptr() != t.untyped_storage().data_ptr()
    # a plain tensor (bytes only in memory) next to them is a copy, as before
    payload, _ = _dump(cache, {"c": torch.ones(1000)})
    copies, links = _kinds(cache)
    assert len(copies) == 1 and len(links) == 2
    assert torch.equal(blobs.loads(payload, cache.blobs)["c"], torch.ones(1000))


def test_a_tensor_changed_in_memory_is_stored_as_bytes(tmp_path, mapped):
    """A page written after mapping (copy-on-write) no longer is the file's: a link to
    the file would give the old values."""
    _, weights = mapped
    weights["a"].add_(1.0)
    cache = PassCache(tmp_path / "cache")
    payload, _ = _dump(cache, {"a": weights["a"]})
    copies, links = _kinds(cache)
    assert len(copies) == 1 and links == []
    assert torch.equal(blobs.loads(payload, cache.blobs)["a"], weights["a"])


def test_a_link_reads_the_file_only_when_a_page_may_differ_from_it(tmp_path, mapped, monkeypatch):
    """Pages never written to since mapping are the file's (pagemap): the link is written
    from the digest of the bytes in memory, without reading the file again (5.7 GB per
    run at Llama-3.2-1B's shapes). A tensor whose pages were written to (here: changed and
    changed back, so the bytes still match) is read back and compared first."""
    from pteflow.passes.cache import file_ranges

    path, weights = mapped
    reads: list[int] = []
    read = file_ranges.range_digest

    def counted(*args, **kwargs):
        reads.append(args[2])
        return read(*args, **kwargs)

    monkeypatch.setattr(file_ranges, "range_digest", counted)
    cache = PassCache(tmp_path / "cache")
    payload, _ = _dump(cache, weights)
    assert len(_kinds(cache)[1]) == 2 and reads == []  # linked, the file not read
    back = blobs.loads(payload, cache.blobs)  # reading a link checks the file, as before
    assert all(torch.equal(back[k], t) for k, t in weights.items())
    assert sorted(reads) == sorted(t.nbytes for t in weights.values())

    a = torch.load(path, mmap=True, weights_only=True)["a"]
    a.copy_(a.clone())  # written to: private copies of its pages now, with the same values
    assert torch.equal(a, weights["a"])
    reads.clear()
    other = PassCache(tmp_path / "other")
    payload, _ = _dump(other, {"a": a})
    assert reads == [a.nbytes]  # compared with the file first
    copies, links = _kinds(other)
    assert links and not copies  # (it matched)
    assert torch.equal(blobs.loads(payload, other.blobs)["a"], weights["a"])


def test_a_link_is_repointed_when_the_same_bytes_come_from_another_file(tmp_path, mapped):
    """A run whose checkpoint moved stores the same digests: the links follow the file
    it read (instead of staying on a path that may be gone)."""
    path, weights = mapped
    cache = PassCache(tmp_path / "cache")
    _dump(cache, weights)
    moved = tmp_path / "moved.pth"
    shutil.copy(path, moved)
    again = torch.load(moved, mmap=True, weights_only=True)
    payload, _ = _dump(cache, again)
    _, links = _kinds(cache)
    assert len(links) == 2 and all(str(moved) in p.read_text() for p in links)
    path.unlink()
    back = blobs.loads(payload, cache.blobs)
    assert all(torch.equal(back[k], again[k]) for k in again)


@pytest.mark.parametrize("damage", ["edit", "delete", "truncate", "fifo"])
def test_a_link_whose_file_changed_is_a_missing_blob(tmp_path, mapped, damage):
    path, weights = mapped
    cache = PassCache(tmp_path / "cache")
    payload, _ = _dump(cache, weights)
    del weights  # the mapping goes; the file may change under the links
    data = bytearray(path.read_bytes())
    if damage == "edit":  # flip a byte inside the tensors' bytes (the file's middle)
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 3]))
    else:
        path.unlink()
        if damage == "fifo":  # reading it would block forever
            os.mkfifo(path)
    with pytest.raises(blobs.MissingBlob):
        blobs.loads(payload, cache.blobs)
    # the bad link is removed: a recomputation stores the blob again instead of finding it
    assert len(_kinds(cache)[1]) == 1


def test_cache_info_counts_links(capsys, tmp_path, mapped):
    from pteflow.driver.cli import main

    _, weights = mapped
    cache = PassCache(tmp_path / "cache")
    payload, sizes = _dump(cache, weights)
    # an entry referring to the blobs, as the writer makes it
    tmp = cache.write_tmp("k" * 64, {"blobs": sizes}, payload)
    os.replace(tmp, cache.path("k" * 64))
    info = cache.info()
    assert (info.linked, info.linked_bytes) == (2, sum(t.nbytes for t in weights.values()))
    assert main(["cache", "info", "--cache-dir", str(cache.directory)]) == 0
    assert f"links: 2 blobs ({info.linked_bytes / 2**20:.2f} MiB)" in capsys.readouterr().out


def test_pt2e_cache_links_the_float_weights_instead_of_copying_them(tmp_path):
    """pt2e keeps the float program before its quantizer (to resume there): each run's
    cache held a copy of the checkpoint (stories: 2.18x the .pte). Those weights are
    links now; what is stored as bytes is the quantized side only."""
    tiny = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 512}
    params, checkpoint = write_random_checkpoint(tmp_path / "model", **tiny)
    cache, pte = tmp_path / "cache", tmp_path / "m.pte"
    cmd = [sys.executable, "-m", "pteflow.driver", "run", "--pipeline", "xnnpack_pt2e"]
    cmd += ["--params", str(params), "--checkpoint", str(checkpoint)]
    cmd += ["-o", str(pte), "--cache-dir", str(cache), "--no-verify"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    copies, _links = _kinds(PassCache(cache))
    weights = checkpoint.stat().st_size
    assert PassCache(cache).info().linked_bytes >= 0.9 * weights
    assert sum(p.stat().st_size for p in copies) < 0.5 * weights  # was 1.5x
    # a resumed run (emit's options differ: not a full hit) reads blobs through links
    again = tmp_path / "again.pte"
    cmd[cmd.index(str(pte))] = str(again)
    cmd += ["--set", "emit.smoke=false"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "restored from the pass cache" in done.stdout
    assert again.read_bytes() == pte.read_bytes()
    # the checkpoint moved: the same model (same key), links to a path that is gone; the
    # entries are recomputed (each warning names the old path), then links go to the new
    moved = tmp_path / "moved"
    (tmp_path / "model").rename(moved)
    cmd[cmd.index(str(checkpoint))] = str(moved / checkpoint.name)
    cmd[cmd.index(str(params))] = str(moved / params.name)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    dropped = [ln for ln in done.stderr.splitlines() if "dropped entry" in ln]
    assert dropped and all(f"{checkpoint} cannot be read" in ln for ln in dropped)
    assert again.read_bytes() == pte.read_bytes()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0 and "full hit" in done.stdout, done.stderr[-2000:]
    assert "dropped" not in done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/pagemap")
@pytest.mark.parametrize("thread", ["main", "writer"])
def test_finding_a_mapped_constant_in_the_pte_does_not_page_the_checkpoint_in(tmp_path, thread):
    """The writer stores the .pte as pieces, finding the known constants in it. Comparing
    a memory-mapped constant byte by byte read the checkpoint's pages back in from the
    writer thread, which cannot hand them back, while the emitter's copy was resident
    (portable at stories: +60 MB on the run's peak with the cache on). The main thread
    (a forked writer's child, the full-run entry) compares piece by piece, handing each
    piece's pages back; another thread compares the remembered digest."""
    import threading

    from pteflow.ir import hashing, mapped_pages

    from ...mapped_files import resident_kb

    path = tmp_path / "weights.pth"
    torch.save({"w": torch.randn(4096, 1024, generator=torch.Generator().manual_seed(0))}, path)
    w = torch.load(path, mmap=True, weights_only=True)["w"]
    hashing.tensor_digest(w)  # the run's key hashed it (remembered per tensor)
    copy = bytes(hashing.raw_bytes(w.clone()))  # the emitter's copy, in the .pte
    mapped_pages.release_mapped_files()
    assert resident_kb(path) == 0

    found: list[list] = []

    def split() -> None:
        found.append(pte_split.split([b"header..", copy, b"tail"], [w]))

    if thread == "main":
        split()
    else:
        worker = threading.Thread(target=split)
        worker.start()
        worker.join()
    pieces = found[0]

    assert [p is w for p in pieces] == [False, True, False]
    # kB: reading its first bytes maps the page cache's folio around them (2 MB here);
    # compared byte by byte, all 16 MB
    assert resident_kb(path) <= 4096
    assert pte_split.split([b"header..", copy[:-8] + b"changed!"], [w])[1:] == [
        copy[:-8] + b"changed!"
    ]  # a different buffer with the same beginning is not taken for it


@pytest.mark.parametrize("offset, size", [(0, 0), (3, 100), (7, (1 << 20) * 2 + 5)])
def test_a_range_is_hashed_and_copied_in_pieces_to_the_same_bytes(tmp_path, offset, size):
    """Ranges across several read pieces (``_CHUNK``), read through one buffer or straight
    into the destination: the digest and the copy are the range's bytes."""
    import hashlib

    from pteflow.passes.cache import file_ranges

    data = bytes(range(256)) * ((offset + size) // 256 + 2)
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    want = data[offset : offset + size]
    digest = hashlib.sha256(want).hexdigest()
    assert file_ranges.range_digest(str(path), offset, size) == digest
    into = bytearray(size)
    assert file_ranges.range_digest(str(path), offset, size, into=into) == digest
    assert bytes(into) == want
    with pytest.raises(file_ranges.LinkMismatch, match="ends before"):
        file_ranges.range_digest(str(path), len(data) - 2, 10)
