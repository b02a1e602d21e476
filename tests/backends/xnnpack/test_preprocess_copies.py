"""Lowering copies one partition's program at a time (passes/partition/preprocess_copies.py).

A spy on ``copy.deepcopy`` (ExecuTorch itself runs, unmocked) counts the partition copies
alive at once: upstream's ``to_backend`` keeps all of them; pteflow's lowering keeps one,
and the delegates it writes are byte for byte upstream's.
"""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch

from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.ir import Level, Program
from pteflow.passes import PassManager
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.partition.preprocess_copies import backend_class, copies_one_at_a_time
from pteflow.testing import build_program

from ...mapped_files import memory_mapped, resident_kb


class Gapped(torch.nn.Module):
    """Three linears split by cumsum (not XNNPACK's): three partitions."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(64, 64) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x).cumsum(-1)
        return x


@pytest.fixture
def edge() -> Program:
    aten = build_program(Gapped(), (torch.randn(2, 64),), level=Level.ATEN)
    to_edge = ToEdgePass(keep_whole_for=(PartitionXnnpackPass().spec(),))
    return PassManager([to_edge]).run(aten).program


class _LiveCopies:
    """Counts ExportedProgram deep copies alive at once (the most, and how many in all)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from torch.export import ExportedProgram

        self.live = self.most = self.made = 0
        real = copy.deepcopy

        def spy(obj, memo=None, _nil=[]):  # noqa: B006 (copy.deepcopy's own signature)
            out = real(obj, memo)
            if isinstance(obj, ExportedProgram) and memo is None:
                self.made += 1
                self.live += 1
                self.most = max(self.most, self.live)
                weakref.finalize(out, self._gone)
            return out

        monkeypatch.setattr(copy, "deepcopy", spy)

    def _gone(self) -> None:
        self.live -= 1


def _payloads(manager) -> list[bytes]:
    from executorch.exir.lowered_backend_module import get_lowered_backend_modules

    gm = manager.exported_program().graph_module
    return [m.processed_bytes for m in get_lowered_backend_modules(gm)]


@pytest.mark.slow
def test_one_copy_alive_at_a_time_and_the_same_delegates(edge, monkeypatch):
    partitioner = PartitionXnnpackPass().make_partitioner()
    upstream_spy = _LiveCopies(monkeypatch)
    upstream = edge.artifact.to_backend(partitioner)  # upstream as it is: every copy at once
    assert upstream_spy.made == 3 and upstream_spy.most == 3

    pteflow_spy = _LiveCopies(monkeypatch)
    lowered = PassManager([PartitionXnnpackPass()]).run(edge).program
    assert pteflow_spy.made == 3  # still one isolated copy per partition
    assert pteflow_spy.most == 1
    assert _payloads(lowered.artifact) == _payloads(upstream)
    assert len(_payloads(upstream)) == 3


@pytest.mark.slow
def test_a_copy_lets_go_of_its_weights_as_its_preprocess_returns(edge, monkeypatch):
    """A partition's copy, and the programs XNNPACK's passes re-trace from it, are cyclic
    garbage (graph <-> nodes) that only a full collection frees; their weights must not
    wait for one (at SmolLM2-135M's shapes ~176 MB of copied weights waited through
    partitioning and to-executorch)."""
    from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend

    copied: list[weakref.ref] = []
    real = XnnpackBackend.preprocess

    def recording(program, compile_specs):
        tensors = [*program.state_dict.values(), *program.constants.values()]
        copied.extend(weakref.ref(t) for t in tensors if isinstance(t, torch.Tensor))
        return real(program, compile_specs)

    monkeypatch.setattr(XnnpackBackend, "preprocess", staticmethod(recording))
    gc.collect()
    gc.disable()
    try:
        lowered = PassManager([PartitionXnnpackPass()]).run(edge).program
        alive = sum(r() is not None for r in copied)
    finally:
        gc.enable()
    assert len(copied) == 6  # three partitions' weight and bias
    assert alive == 0
    assert len(_payloads(lowered.artifact)) == 3


def test_the_backend_class_is_restored_even_on_error():
    from executorch.exir.backend.backend_details import BackendDetails

    partitioner = PartitionXnnpackPass().make_partitioner()
    backend = backend_class(partitioner)
    assert backend is not None and backend.__name__ == "XnnpackBackend"
    before = dict(vars(backend))
    with pytest.raises(KeyError), copies_one_at_a_time(partitioner):
        assert backend.copy_exported_program_for_preprocess("p", []) == "p"
        raise KeyError("lowering failed")
    assert dict(vars(backend)) == before
    default = BackendDetails.copy_exported_program_for_preprocess.__func__
    assert backend.copy_exported_program_for_preprocess.__func__ is default


def test_backends_with_their_own_hooks_are_left_alone():
    from executorch.backends.qualcomm.qnn_preprocess import QnnBackend

    class QnnLike:
        class delegation_spec:
            backend_id = "QnnBackend"

    before = dict(vars(QnnBackend))
    with copies_one_at_a_time(QnnLike()):
        assert dict(vars(QnnBackend)) == before  # preprocess_multimethod is its own
    assert backend_class(object()) is None


class _Wide(torch.nn.Module):
    """Two 1 MB linears split by cumsum: two partitions."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(512, 512) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x).cumsum(-1)
        return x


@pytest.mark.slow
def test_a_copy_hands_back_the_checkpoint_pages_it_read(tmp_path, monkeypatch):
    """While the backend packs a partition's weight, its copy and its payload hold it; the
    memory-mapped checkpoint's pages the copy was read from must not be resident too (at
    stories' shapes the output projection three times over: partitioning's peak)."""
    from executorch.backends.xnnpack.xnnpack_preprocess import XnnpackBackend

    path = tmp_path / "weights.pth"
    module = memory_mapped(_Wide(), path)
    aten = build_program(module, (torch.randn(2, 512),), level=Level.ATEN)
    to_edge = ToEdgePass(keep_whole_for=(PartitionXnnpackPass().spec(),))
    edge = PassManager([to_edge]).run(aten).program
    seen: list[int] = []
    real = XnnpackBackend.preprocess

    def recording(program, compile_specs):
        seen.append(resident_kb(path))  # the copy is made: the file's pages it read?
        return real(program, compile_specs)

    monkeypatch.setattr(XnnpackBackend, "preprocess", staticmethod(recording))
    lowered = PassManager([PartitionXnnpackPass()]).run(edge).program
    assert len(seen) == 2
    assert max(seen) < 256  # kB; without the release, 1 MB more per partition (1088, 2056)
    assert len(_payloads(lowered.artifact)) == 2
