"""A lowered program is freed once nobody holds it: the process-wide caches upstream
fills while partitioning (``passes/partition/upstream_caches.py``) no longer keep its
graphs and delegates (and their weight payloads) alive for the rest of the process."""

from __future__ import annotations

import gc
import weakref

import torch
from executorch.exir.lowered_backend_module import LoweredBackendModule

from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.ir import Program
from pteflow.passes import PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.convert.to_executorch import ToExecutorchPass
from pteflow.passes.partition.upstream_caches import forget_graphs_upstream_keeps


def _lowered(program: Program) -> list[weakref.ref]:
    return [
        weakref.ref(m)
        for ep in program.exported_programs().values()
        for m in ep.graph_module.modules()
        if isinstance(m, LoweredBackendModule)
    ]


def _lower(*extra, dynamic: bool = False) -> Program:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    shapes = ({0: torch.export.Dim("batch", min=1, max=8)},) if dynamic else None
    eager = Program.eager(module.eval(), (torch.randn(2, 16),), dynamic_shapes=shapes)
    passes = [TorchExportPass(), ToEdgePass(), PartitionXnnpackPass(), *extra]
    return PassManager(passes, verify="off").run(eager).program


def test_a_partitioned_program_is_freed_when_dropped():
    program = _lower()
    refs = _lowered(program)
    assert refs and all(r() is not None for r in refs)
    del program
    gc.collect()  # what the partition pass cleared is enough: nothing else is asked for
    assert [r() for r in refs] == [None] * len(refs)


def test_an_executorch_program_is_freed_once_the_caches_are_emptied():
    """to-executorch's fake-tensor dispatch caches its delegate calls (keyed by the
    lowered modules) after the partition pass cleared: the driver empties them again."""
    program = _lower(ToExecutorchPass())
    refs = _lowered(program)
    assert refs
    del program
    forget_graphs_upstream_keeps()
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)


def test_symbolic_sizes_do_not_keep_a_dropped_program_alive():
    """With dynamic shapes the delegate calls are cached in the ``ShapeEnv``'s own dispatch
    cache, which lives as long as any symbolic size made in it: ``deep`` empties them."""
    program = _lower(ToExecutorchPass(), dynamic=True)
    refs = _lowered(program)
    assert refs
    del program
    forget_graphs_upstream_keeps(deep=True)
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)
