"""Running passes: records, checks between passes, errors that name the pass."""

from __future__ import annotations

import pytest
import torch

from pteflow.ir import Level
from pteflow.ir.errors import FactError, InvariantError, PassFailedError
from pteflow.passes import PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass

from ..fakes import BreaksGraphPass, ClaimsQuantizedPass, RaisesPass, ReluToSigmoidPass


def test_records_time_ops_facts_and_changes(eager_mlp):
    result = PassManager([ToEdgePass(), ReluToSigmoidPass(), TorchExportPass()], verify="each").run(
        eager_mlp
    )
    assert [r.name for r in result.records] == ["export", "relu-to-sigmoid", "to-edge"]
    export, rewrite, edge = result.records
    assert export.ops_before == 2 and export.ops_after == 3  # 2 Linear modules -> 3 ops
    assert rewrite.modified and rewrite.ops_before == rewrite.ops_after
    assert edge.level_in == "aten" and edge.level_out == "edge"
    assert all(r.wall_s >= 0 and r.cpu_s >= 0 for r in result.records)
    assert result.program.level == Level.EDGE
    sig = [
        n
        for n in result.program.graph_modules()["forward"].graph.nodes
        if "sigmoid" in str(n.target)
    ]
    assert len(sig) == 1


def test_an_unchanged_pass_says_so(aten_mlp):
    result = PassManager([ReluToSigmoidPass(), ReluToSigmoidPass()], verify="each").run(aten_mlp)
    assert [r.modified for r in result.records] == [True, False]  # second run: idempotent


def test_a_lying_pass_is_caught_and_named(aten_mlp):
    with pytest.raises(
        FactError, match="'claims-quantized' broke an invariant: claims fact 'quantized.pt2e'"
    ):
        PassManager([ClaimsQuantizedPass()], verify="each").run(aten_mlp)


def test_boundaries_mode_blames_the_claimant_at_the_next_boundary(aten_mlp):
    with pytest.raises(FactError, match="claims-quantized"):
        PassManager([ClaimsQuantizedPass(), ToEdgePass()], verify="boundaries").run(aten_mlp)


def test_off_mode_checks_nothing(aten_mlp):
    result = PassManager([ClaimsQuantizedPass()], verify="off").run(aten_mlp)
    assert result.records[0].name == "claims-quantized"


def test_a_broken_invariant_names_the_pass(aten_mlp):
    with pytest.raises(InvariantError, match="'breaks-graph' broke an invariant: .*calls module"):
        PassManager([BreaksGraphPass()], verify="each").run(aten_mlp)


def test_an_exception_is_wrapped_with_name_position_and_options(aten_mlp):
    with pytest.raises(PassFailedError) as info:
        PassManager([ReluToSigmoidPass(), RaisesPass(message="kaput")]).run(aten_mlp)
    err = info.value
    assert err.pass_name == "raises" and err.position == 1
    assert "raises{message=kaput}" in str(err) and "ValueError: kaput" in str(err)
    assert isinstance(err.__cause__, ValueError)


def test_the_same_pass_listed_twice_runs_twice(aten_mlp):
    p = ReluToSigmoidPass()
    result = PassManager([p, p]).run(aten_mlp)
    assert [r.position for r in result.records] == [0, 1]


def test_unknown_verify_mode_is_refused():
    from pteflow.ir.errors import PipelineError

    with pytest.raises(PipelineError, match="verify mode 'sometimes'"):
        PassManager([], verify="sometimes")  # type: ignore[arg-type]


def test_upcoming_passes_are_visible_to_a_running_pass(aten_mlp):
    seen = []

    class Spy(ReluToSigmoidPass):
        def run(self, program, ctx):
            seen.append(tuple(p.name for p in ctx.upcoming))
            return super().run(program, ctx)

    PassManager([Spy(), ToEdgePass()]).run(aten_mlp)
    assert seen == [("to-edge",)]
    assert torch.ops.aten.relu.default  # keep torch import used
