from __future__ import annotations

import pytest
import torch

from pteflow import testing
from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import OptionError
from pteflow.passes.convert.to_executorch import ToExecutorchPass

from ...mapped_files import memory_mapped, resident_kb
from ...models import Lookup, mlp


def test_to_executorch_serializes_and_runs_like_edge():
    # a fresh EDGE program: to_executorch plans memory in the edge graph it is given (it
    # adds alloc nodes), so the session's shared edge_mlp must not be handed to it
    module, inputs = mlp()
    edge = testing.build_program(module, inputs, level=Level.EDGE)
    run = testing.run_pass(ToExecutorchPass(), edge)
    assert run.modified and run.after.level == Level.EXECUTORCH
    assert len(run.after.artifact.buffer) > 0
    run.assert_outputs_unchanged()  # EDGE in python vs EXECUTORCH in the runtime


def test_const_prop_provides_the_fact():
    assert facts.CONST_PROPAGATED in ToExecutorchPass(const_prop=True).contract.provides
    assert facts.CONST_PROPAGATED not in ToExecutorchPass().contract.provides


def test_unknown_sym_shape_eval_is_refused():
    with pytest.raises(OptionError, match="'constraint-based'"):
        ToExecutorchPass(sym_shape_eval="hint")


def _edge_of_mapped(path) -> Program:
    module = memory_mapped(Lookup(), path)
    return testing.build_program(module, (torch.tensor([[1, 5, 9]]),), level=Level.EDGE)


def test_the_checkpoint_pages_the_emitter_copied_are_handed_back(tmp_path, monkeypatch):
    """The emitter copies each constant into the program: the memory-mapped checkpoint's
    pages it read must not stay resident beside the copy (at stories' shapes the
    embedding twice at to-executorch, the run's peak); the program is the same."""
    import contextlib

    from pteflow.ir.serialized import pte_bytes
    from pteflow.passes.convert import to_executorch

    path = tmp_path / "weights.pth"
    released = testing.run_pass(ToExecutorchPass(), _edge_of_mapped(path)).after
    assert resident_kb(path) < 256  # kB (the kernel maps neighbours of a page read: <= 64)

    monkeypatch.setattr(to_executorch, "constants_pages_released", contextlib.nullcontext)
    other = tmp_path / "again.pth"
    kept = testing.run_pass(ToExecutorchPass(), _edge_of_mapped(other)).after
    assert resident_kb(other) >= 1024  # upstream's emitter alone leaves the table's pages
    assert pte_bytes(released.artifact) == pte_bytes(kept.artifact)


def test_the_emitter_copies_a_checkpoint_weight_from_the_file(tmp_path, monkeypatch):
    """A constant whose bytes are the memory-mapped checkpoint's is copied by reading the
    file (``pread``), not through the mapping: its pages never join the process while the
    copy is made (the emitter's copy and the pages were stories' peak); same program."""
    import contextlib

    from pteflow.ir import file_mappings, mapped_pages
    from pteflow.ir.serialized import pte_bytes
    from pteflow.passes.convert import emitter_pages, to_executorch

    path = tmp_path / "weights.pth"
    edge = _edge_of_mapped(path)
    reads: list[tuple[int, int]] = []  # (bytes read, kB of the mapping resident then)
    read_range = file_mappings.read_range

    def recorded(name, offset, size):
        reads.append((size, resident_kb(path)))
        return read_range(name, offset, size)

    monkeypatch.setattr(file_mappings, "read_range", recorded)
    mapped_pages.release_mapped_files()  # as the driver does before each pass
    from_file = ToExecutorchPass().apply(edge).program  # no checks reading the weights first
    # the table (1 MB), read while none of it was resident (<= 64 kB: the kernel maps the
    # neighbours of a page read, such as the pickle's header beside it)
    assert [size for size, _ in reads] == [1024 * 256 * 4] and reads[0][1] <= 64

    monkeypatch.setattr(emitter_pages, "_copies_bytes_once", lambda: False)  # upstream's copy
    monkeypatch.setattr(to_executorch, "constants_pages_released", contextlib.nullcontext)
    other = tmp_path / "again.pth"
    through_mapping = ToExecutorchPass().apply(_edge_of_mapped(other)).program
    assert len(reads) == 1
    assert pte_bytes(from_file.artifact) == pte_bytes(through_mapping.artifact)


def test_a_checkpoint_weight_changed_in_memory_is_copied_from_memory(tmp_path):
    """A weight written to after loading (its pages private copies now) is not the file's:
    the emitter copies the bytes in memory, so the program computes what eager does."""
    module = memory_mapped(Lookup(), tmp_path / "weights.pth")
    with torch.no_grad():
        module.table.weight[:4] += 1.0  # the first page of the table, changed in memory
    edge = testing.build_program(module, (torch.tensor([[0, 1, 900]]),), level=Level.EDGE)
    run = testing.run_pass(ToExecutorchPass(), edge)
    run.assert_outputs_unchanged()  # EDGE (memory) vs the runtime running the copy
