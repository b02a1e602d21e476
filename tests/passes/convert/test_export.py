from __future__ import annotations

import pytest
import torch

from pteflow import testing
from pteflow.ir import Level, Program
from pteflow.passes.convert.export import TorchExportPass


def test_export_captures_the_module_and_matches_eager(eager_mlp):
    run = testing.run_pass(TorchExportPass(), eager_mlp)
    assert run.modified and run.after.level == Level.ATEN
    assert run.ops_after[torch.ops.aten.linear.default] == 2
    run.assert_outputs_unchanged(atol=0, rtol=0)


def test_export_uses_dynamic_shapes_per_method():
    from tests.models import mlp

    module, inputs = mlp()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = Program.eager(module, inputs, dynamic_shapes=({0: batch},))
    out = TorchExportPass().apply(program).program
    ep = out.exported_programs()["forward"]
    x = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == "x")
    assert isinstance(x.meta["val"].shape[0], torch.SymInt)
    bigger = (torch.randn(9, 16),)
    torch.testing.assert_close(ep.module()(*bigger), module(*bigger))


def test_export_of_every_method():
    from tests.models import MLP

    torch.manual_seed(0)
    a, b = MLP().eval(), MLP(d_in=4).eval()
    program = Program.eager(
        {"a": a, "b": b}, {"a": (torch.randn(2, 16),), "b": (torch.randn(2, 4),)}
    )
    out = TorchExportPass().apply(program).program
    assert sorted(out.exported_programs()) == ["a", "b"]


def test_export_options_are_typed():
    assert TorchExportPass(strict=True).describe() == "export{strict=true}"
    with pytest.raises(TypeError):
        TorchExportPass(bogus=1)  # type: ignore[call-arg]
