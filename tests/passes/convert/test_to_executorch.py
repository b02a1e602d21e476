from __future__ import annotations

import pytest
import torch

from pteflow import testing
from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import OptionError
from pteflow.passes.convert.to_executorch import ToExecutorchPass

from ...mapped_files import memory_mapped, resident_kb
from ...models import mlp


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


class _Lookup(torch.nn.Module):
    """An embedding table (1 MB) the portable program keeps as a constant."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(1024, 256)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids) * 2


def _edge_of_mapped(path) -> Program:
    module = memory_mapped(_Lookup(), path)
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
