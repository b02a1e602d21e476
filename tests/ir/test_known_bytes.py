"""A byte string equal to a weight whose digest the run took gets that digest by
comparison, not by hashing it again (pteflow/ir/known_bytes.py); anything else gets None
and is hashed by the caller."""

from __future__ import annotations

import hashlib
import sys
import threading

import pytest
import torch

from pteflow.ir import hashing, known_bytes, mapped_pages

from ..mapped_files import resident_kb


def _weight(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _bytes(t: torch.Tensor) -> bytes:
    return bytes(hashing.raw_bytes(t))


def _mapped(tmp_path, *shape: int) -> tuple:
    """A checkpoint's weight loaded memory-mapped, its digest taken (the run's key), a copy
    of its bytes (the emitter's, a backend's), then none of its pages resident."""
    path = tmp_path / "weights.pth"
    torch.save({"w": _weight(0, *shape)}, path)
    w = torch.load(path, mmap=True, weights_only=True)["w"]
    digest = hashing.tensor_digest(w)
    copy = _bytes(w.clone())
    mapped_pages.release_mapped_files()
    return path, w, copy, digest


def test_a_copy_of_a_remembered_weight_takes_its_digest():
    weights = [_weight(i, 64, 64) for i in range(4)]  # same size: found by their bytes
    digests = [hashing.tensor_digest(w) for w in weights]
    found = known_bytes.WeightBytes()
    for w, digest in zip(weights, digests, strict=True):
        assert found.digest_of(_bytes(w)) == digest == hashlib.sha256(_bytes(w)).hexdigest()


def test_what_no_remembered_weight_holds_gets_none():
    w = _weight(0, 64, 64)
    hashing.tensor_digest(w)
    data = bytearray(_bytes(w))
    data[-1] ^= 1  # same size, same beginning, one bit different at the end
    found = known_bytes.WeightBytes()
    assert found.digest_of(bytes(data)) is None
    assert found.digest_of(_bytes(w)[:-4]) is None  # another size
    assert known_bytes.WeightBytes().digest_of(_bytes(_weight(1, 64, 64))) is None  # never hashed


def test_a_weight_changed_since_it_was_hashed_is_no_candidate():
    w = _weight(0, 64, 64)
    hashing.tensor_digest(w)
    w.add_(1.0)  # in place: its remembered digest is stale
    assert known_bytes.WeightBytes().digest_of(_bytes(w)) is None


def test_only_the_main_thread_compares():
    w = _weight(0, 64, 64)
    hashing.tensor_digest(w)
    found = known_bytes.WeightBytes()
    answers = []
    worker = threading.Thread(target=lambda: answers.append(found.digest_of(_bytes(w))))
    worker.start()
    worker.join()
    assert answers == [None]
    assert found.digest_of(_bytes(w)) == hashing.tensor_digest(w)


def test_weights_alike_but_for_their_end_are_compared_whole_at_most_twice(monkeypatch):
    """Many weights with the same first bytes (e.g. zeros but for their last element):
    a bounded number of whole comparisons, then the caller hashes."""
    alike = []
    for i in range(6):
        t = torch.zeros(64, 64)
        t[-1, -1] = i + 1.0
        hashing.tensor_digest(t)
        alike.append(t)
    compared = []
    real = mapped_pages.equal_releasing

    def counting(data, address, *args, **kwargs):
        compared.append(address)
        return real(data, address, *args, **kwargs)

    monkeypatch.setattr(mapped_pages, "equal_releasing", counting)
    found = known_bytes.WeightBytes()
    assert found.digest_of(_bytes(alike[0])) == hashing.tensor_digest(alike[0])
    assert len(compared) == 1
    compared.clear()
    assert found.digest_of(_bytes(alike[-1])) is None  # the sixth alike: not reached
    assert len(compared) == known_bytes.FULL_COMPARES


@pytest.mark.parametrize("size", [0, 5, (4 << 20) * 2 + 12])
def test_equal_releasing_compares_every_piece(size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    same = torch.frombuffer(bytearray(data), dtype=torch.uint8) if size else torch.empty(0)
    assert mapped_pages.equal_releasing(data, same.data_ptr())
    if size:
        for at in (0, size // 2, size - 1):  # a difference in the first, a middle, the last piece
            other = bytearray(data)
            other[at] ^= 0xFF
            assert not mapped_pages.equal_releasing(bytes(other), same.data_ptr())


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/pagemap")
def test_comparing_with_a_mapped_weight_hands_its_pages_back(tmp_path):
    """The weight's bytes are a memory-mapped checkpoint's: compared piece by piece, its
    pages do not stay resident (the forked writer's child reads 5 GB of them at 1B)."""
    path, _w, copy, digest = _mapped(tmp_path, 4096, 1024)  # 16 MB
    assert resident_kb(path) == 0
    assert known_bytes.WeightBytes().digest_of(copy) == digest
    assert resident_kb(path) <= 4096 + 256  # kB: at most one piece and its neighbours


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/pagemap")
def test_a_small_mapped_weight_is_handed_back_too(tmp_path):
    """One piece or less (most weights at stories size): handed back once compared, so
    the forked writer's child and the full-run entry do not keep the checkpoint resident
    (portable at stories: +23 MB on the run's peak when they were not)."""
    from pteflow.passes.cache import pte_split

    path, w, copy, digest = _mapped(tmp_path, 256, 1024)  # 1 MB
    assert resident_kb(path) == 0
    assert known_bytes.WeightBytes().digest_of(copy) == digest
    assert resident_kb(path) <= 64  # kB: the pages it shares with the file's header
    pieces = pte_split.split([b"header..", copy, b"tail"], [w])
    assert [p is w for p in pieces] == [False, True, False]
    assert resident_kb(path) <= 64
