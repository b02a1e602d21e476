from __future__ import annotations

import torch

from pteflow import testing
from pteflow.ir import Level, facts, views
from pteflow.passes import plan
from pteflow.passes.aten.remove_redundant_transposes import RemoveRedundantTransposesPass
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.quantize.pt2e_prepare import Pt2ePreparePass


class Transposes(torch.nn.Module):
    """Two transposes that undo each other (as attention around custom SDPA has), one that
    does not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.transpose(1, 2).transpose(1, 2)
        return (y * 2).transpose(0, 1)


def _program():
    return testing.build_program(Transposes(), (torch.randn(2, 3, 4),), level=Level.ATEN)


def test_drops_the_pair_that_cancels_and_keeps_outputs():
    program = _program()
    before = views.op_histogram(program)
    run = testing.run_pass(RemoveRedundantTransposesPass(), program)
    assert run.modified
    assert run.op_delta() == {torch.ops.aten.transpose.int: -2}
    run.assert_outputs_unchanged(atol=0, rtol=0)
    assert views.op_histogram(program) == before  # the input program is left as it was


def test_second_run_changes_nothing():
    once = RemoveRedundantTransposesPass().apply(_program()).program
    twice = RemoveRedundantTransposesPass().apply(once)
    assert not twice.modified
    assert twice.program.artifact is once.artifact


def test_nothing_to_remove_is_not_modified(aten_mlp):
    code = aten_mlp.exported_programs()["forward"].graph_module.code
    run = RemoveRedundantTransposesPass().apply(aten_mlp)
    assert not run.modified
    # a GraphPass returns the run's own copy (graph_pass.py), equal to its input
    assert run.program.exported_programs()["forward"].graph_module.code == code


def test_contract():
    info = RemoveRedundantTransposesPass.info
    assert (info.level_in, info.level_out) == (Level.ATEN, Level.ATEN)
    assert not info.requires and not info.provides
    assert facts.LINEAR_CANONICAL not in info.invalidates


def test_runs_before_pt2e_prepare_as_in_the_builder():
    listed = [TorchExportPass(), Pt2ePreparePass(), RemoveRedundantTransposesPass()]
    names = [p.name for p in plan(listed).ordered_passes()]
    assert names == ["export", "remove-redundant-transposes", "pt2e-prepare"]
