"""The pages of a memory-mapped checkpoint that were read are handed back; a modified one
never is (pteflow/ir/mapped_pages.py).

Residency is read from ``/proc/self/smaps`` (the kernel's count, not the module's own).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pteflow.ir import mapped_pages

from ..mapped_files import resident_kb

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/pagemap")


@pytest.fixture
def mapped(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A checkpoint of two 1 MB tensors, loaded memory-mapped (their bytes are the file's)."""
    path = tmp_path / "weights.pth"
    gen = torch.Generator().manual_seed(0)
    torch.save(
        {"a": torch.randn(256, 1024, generator=gen), "b": torch.randn(256, 1024, generator=gen)},
        path,
    )
    return path, torch.load(path, mmap=True, weights_only=True)


def test_read_pages_are_handed_back_and_read_again_unchanged(mapped):
    path, weights = mapped
    sums = {k: float(t.double().sum()) for k, t in weights.items()}  # reads every page
    assert resident_kb(path) >= 2 * 1024

    released = mapped_pages.release_mapped_files()

    assert resident_kb(path) == 0
    assert released >= 2 * 1024 * 1024
    assert {k: float(t.double().sum()) for k, t in weights.items()} == sums
    assert resident_kb(path) >= 2 * 1024  # read again: faulted back in


def test_a_modified_page_is_never_dropped(mapped):
    """In a private mapping a written page is the process's own copy: dropping it would
    silently bring back the file's bytes."""
    path, weights = mapped
    a, b = weights["a"], weights["b"]
    a.sum(), b.sum()
    a[100, 7] = 12345.0  # the page holding it becomes a private copy

    mapped_pages.release_mapped_files()
    assert resident_kb(path) >= 2 * 1024  # the file's mapping has a modified page: kept
    assert mapped_pages.release_tensor(a) == 0  # ... and so does a's storage
    assert a[100, 7].item() == 12345.0

    assert mapped_pages.release_tensor(b) >= 1024 * 1024 - 8192  # b's pages are clean
    assert resident_kb(path) < 2 * 1024
    assert a[100, 7].item() == 12345.0


def test_a_tensor_outside_any_mapped_file_is_left_alone():
    t = torch.randn(1024, 1024)
    t.sum()
    assert mapped_pages.release_tensor(t) == 0
    assert mapped_pages.release_tensor(t.untyped_storage()) == 0


def test_shared_objects_are_not_data_files(mapped):
    _, weights = mapped
    weights["a"].sum()
    data = list(mapped_pages.data_file_mappings())
    so_ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(maxsplit=5)
            if len(fields) > 5 and ".so" in fields[5]:
                so_ranges.append(tuple(int(x, 16) for x in fields[0].split("-")))
    assert so_ranges  # torch's libraries are mapped
    assert not set(so_ranges) & set(data)
    assert any(start <= weights["a"].data_ptr() < end for start, end in data)
