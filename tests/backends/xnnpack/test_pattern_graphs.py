"""XNNPACK's pattern graphs are built only for a partition they could match
(``backends/xnnpack/pattern_graphs.py``): a partition of linears builds none, the
program is byte for byte the one upstream's passes make, and a graph holding the
patterns' op runs the pass as upstream wrote it."""

from __future__ import annotations

import pytest
import torch
from executorch.backends.xnnpack._passes.convert_to_sdpa import ConvertToSDPAPass
from executorch.backends.xnnpack._passes.convert_to_upsample_bilinear2d import (
    ConvertToUpsampleBilinear2d,
)
from executorch.backends.xnnpack.partition.graphs import bilinear_2d, sdpa

from pteflow.backends.xnnpack import pattern_graphs
from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.ir import Program
from pteflow.ir.serialized import pte_bytes
from pteflow.passes import PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.convert.to_executorch import ToExecutorchPass

BUILT = {"bilinear_2d": bilinear_2d._get_bilinear_2d_graphs, "sdpa": sdpa.get_graphs}


def test_every_upstream_pattern_holds_the_op_it_is_skipped_without():
    """What makes the skip exact: a match needs each pattern op in the graph."""
    assert pattern_graphs._checked_release()  # the pinned release: the skip is on here
    patterns = {"bilinear_2d": bilinear_2d.get_graphs(), "sdpa": sdpa.get_graphs()}
    for graphs, _func, _empty, op in pattern_graphs.PASSES.values():
        assert patterns[graphs], graphs
        for gm in patterns[graphs]:
            assert pattern_graphs.holds(gm.graph, pattern_graphs.edge_op(op)), (graphs, op)


class Linears(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 32), torch.nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


class Attention(torch.nn.Module):
    """A softmax over scores and a bilinear upsample: both patterns' ops, no match."""

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        scores = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return torch.nn.functional.interpolate(scores, scale_factor=2, mode="bilinear")


def _pte(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> bytes:
    for build in BUILT.values():
        build.cache_clear()
    torch.manual_seed(0)
    eager = Program.eager(module.eval(), inputs)
    passes = [TorchExportPass(), ToEdgePass(), PartitionXnnpackPass(), ToExecutorchPass()]
    return pte_bytes(PassManager(passes, verify="off").run(eager).program.artifact)


def _built() -> set[str]:
    return {name for name, build in BUILT.items() if build.cache_info().currsize}


@pytest.fixture
def upstream_as_is(monkeypatch):
    """The skip off, as on an ExecuTorch release it was not checked against (``undo()``
    turns it on again)."""
    monkeypatch.setattr(pattern_graphs, "CHECKED_RELEASE", "not this one")
    return monkeypatch


def test_a_partition_of_linears_builds_no_pattern(upstream_as_is):
    torch.manual_seed(0)
    module, x = Linears(), (torch.randn(2, 16),)
    as_is = _pte(module, x)
    assert _built() == {"bilinear_2d", "sdpa"}  # upstream builds both, for nothing
    upstream_as_is.undo()
    originals = (ConvertToSDPAPass.__dict__["call"], ConvertToUpsampleBilinear2d.__dict__["call"])
    assert _pte(module, x) == as_is
    assert _built() == set()
    # upstream's passes and pattern functions are its own again after partitioning
    assert (ConvertToSDPAPass.__dict__["call"], ConvertToUpsampleBilinear2d.__dict__["call"]) == (
        originals
    )
    assert (bilinear_2d._get_bilinear_2d_graphs, sdpa.get_graphs) == tuple(BUILT.values())
    assert bilinear_2d.get_graphs_dict.__module__ == bilinear_2d.__name__


def test_a_graph_with_the_patterns_ops_runs_the_passes_as_upstream(upstream_as_is):
    inputs = (torch.randn(1, 2, 4, 8), torch.randn(1, 2, 4, 8))
    as_is = _pte(Attention(), inputs)
    upstream_as_is.undo()
    assert _pte(Attention(), inputs) == as_is
    assert _built() == {"bilinear_2d", "sdpa"}
