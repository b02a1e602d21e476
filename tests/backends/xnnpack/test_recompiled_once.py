"""Partitioning regenerates the graph's code once, not once per partition
(passes/partition/recompiled_once.py): upstream's ``to_backend`` recompiles the program's
module for every partition it cuts; pteflow's lowering sorts the graph the same way and
recompiles it once, with the same delegates and no module left with stale code."""

from __future__ import annotations

import collections

import pytest
import torch
from executorch.exir import lowered_backend_module as lbm

from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.ir import Level, Program
from pteflow.ir.serialized import pte_bytes
from pteflow.passes import PassManager
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.convert.to_executorch import ToExecutorchPass
from pteflow.passes.partition.recompiled_once import recompiled_once
from pteflow.testing import build_program

from .test_preprocess_copies import Gapped


@pytest.fixture
def edge() -> Program:
    aten = build_program(Gapped(), (torch.randn(2, 64),), level=Level.ATEN)
    to_edge = ToEdgePass(keep_whole_for=(PartitionXnnpackPass().spec(),))
    return PassManager([to_edge]).run(aten).program


@pytest.fixture
def sorts(monkeypatch):
    """The modules upstream's lowering re-sorted (by id, how many times), and how many
    times each of them was recompiled."""
    sorted_: collections.Counter = collections.Counter()
    recompiled: collections.Counter = collections.Counter()
    real_sort, real_recompile = lbm.legalize_graph, torch.fx.GraphModule.recompile

    def sort(gm):
        sorted_[id(gm)] += 1
        return real_sort(gm)

    def recompile(self):
        recompiled[id(self)] += 1
        return real_recompile(self)

    monkeypatch.setattr(lbm, "legalize_graph", sort)
    monkeypatch.setattr(torch.fx.GraphModule, "recompile", recompile)
    return sorted_, recompiled


def _fresh(gm: torch.fx.GraphModule) -> bool:
    """The module's code is what its graph generates now."""
    return gm.code == gm.graph.python_code("self").src


@pytest.mark.slow
def test_one_recompile_for_three_partitions_and_the_same_pte(edge, sorts):
    sorted_, recompiled = sorts
    upstream = edge.artifact.to_backend(PartitionXnnpackPass().make_partitioner())
    assert len(sorted_) == 1 and sum(sorted_.values()) == 3  # one graph, a sort per partition
    (graph,) = sorted_
    as_is = recompiled[graph]
    assert as_is >= 3  # its code regenerated at each sort, and otherwise
    sorted_.clear()
    recompiled.clear()

    lowered = PassManager([PartitionXnnpackPass()]).run(edge).program
    assert len(sorted_) == 1 and sum(sorted_.values()) == 3  # sorted as upstream sorts it
    (graph,) = sorted_
    assert recompiled[graph] == as_is - 3 + 1  # the three sorts' regenerations are one
    assert _fresh(lowered.artifact.exported_program().graph_module)
    assert lbm.legalize_graph.__name__ == "sort"  # what it was before (the spy): restored

    def pte(manager) -> bytes:
        program = edge.evolve(artifact=manager)
        return pte_bytes(PassManager([ToExecutorchPass()]).run(program).program.artifact)

    assert pte(lowered.artifact) == pte(upstream)


def _shuffled() -> torch.fx.GraphModule:
    """A module whose graph lists a node before the node it reads."""
    gm = torch.fx.symbolic_trace(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Tanh()))
    first, second = [n for n in gm.graph.nodes if n.op == "call_module"]
    first.prepend(second)
    gm.recompile()  # code reading a value before it is computed
    return gm


def test_a_module_sorted_inside_is_recompiled_on_exit_even_on_error():
    gm = _shuffled()
    stale = gm.code
    with pytest.raises(KeyError), recompiled_once():
        lbm.legalize_graph(gm)
        assert gm.code == stale  # sorted, not yet regenerated
        assert [n.target for n in gm.graph.nodes if n.op == "call_module"] == ["0", "1"]
        raise KeyError("lowering failed")
    assert _fresh(gm) and gm.code != stale
    assert "recompile" not in vars(gm)  # the method is the module's own again
    assert lbm.legalize_graph.__module__ == "torch.fx.passes.tools_common"
    x = torch.randn(3)
    assert torch.equal(gm(x), torch.tanh(torch.relu(x)))
