"""Read-only views: histograms keyed by op object, stable dumps, diffs."""

from __future__ import annotations

import torch

from pteflow.ir import views


def test_op_histogram_is_keyed_by_the_op_object(aten_mlp, edge_mlp):
    from executorch.exir.dialects._ops import ops as exir_ops

    assert views.op_histogram(aten_mlp)[torch.ops.aten.linear.default] == 2
    assert views.op_histogram(aten_mlp)[torch.ops.aten.relu.default] == 1
    hist = views.op_histogram(edge_mlp)
    assert hist[exir_ops.edge.aten.addmm.default] == 2
    assert torch.ops.aten.addmm.default not in hist


def test_eager_histogram_counts_leaf_modules(eager_mlp):
    assert views.op_histogram(eager_mlp)[torch.nn.Linear] == 2


def test_dump_is_stable_and_diff_shows_the_change():
    from pteflow.ir import Level
    from pteflow.testing import build_program
    from tests.models import mlp

    a = build_program(*mlp(), level=Level.ATEN)
    b = build_program(*mlp(), level=Level.ATEN)
    assert views.dump(a) == views.dump(b)
    assert "aten.linear.default" in views.dump(a)
    assert views.diff(views.dump(a), views.dump(b)) == ""
    gm = b.exported_programs()["forward"].graph_module
    for node in gm.graph.nodes:
        if node.target == torch.ops.aten.relu.default:
            node.target = torch.ops.aten.sigmoid.default
    d = views.diff(views.dump(a), views.dump(b))
    assert "-%relu : float32[4, 32] = aten.relu.default(%linear)" in d
    assert "+%relu : float32[4, 32] = aten.sigmoid.default(%linear)" in d


def test_delegation_summary_of_a_plain_program_is_empty(edge_mlp):
    assert views.delegation_summary(edge_mlp) == []
    assert views.delegated_node_count(edge_mlp) == {}
