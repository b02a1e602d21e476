"""GraphPass's one copy-or-mutate rule: edit in place, only a copy the run made."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch

from pteflow.ir import Level
from pteflow.passes.base import PassInfo
from pteflow.passes.graph_pass import OWNED, GraphPass


@attrs.frozen
class DoubleOutputsPass(GraphPass):
    """Multiply every output by two (a rewrite that changes the graph)."""

    info: ClassVar[PassInfo] = PassInfo(name="double-outputs", level_in=Level.ATEN)

    def rewrite(self, method: str, ep: Any) -> None:
        graph = ep.graph_module.graph
        output = graph.output_node()
        with graph.inserting_before(output):
            doubled = [
                graph.call_function(torch.ops.aten.mul.Tensor, (value, 2.0))
                for value in output.args[0]
            ]
        for new, old in zip(doubled, output.args[0], strict=True):
            new.meta["val"] = old.meta["val"]
        output.args = (tuple(doubled),)
        ep.graph_module.recompile()


@attrs.frozen
class NothingPass(GraphPass):
    """Change nothing."""

    info: ClassVar[PassInfo] = PassInfo(name="nothing", level_in=Level.ATEN)

    def rewrite(self, method: str, ep: Any) -> None:
        pass


def _run(program):
    return program.exported_programs()["forward"].module()(*program.example_inputs["forward"])


def test_the_first_graph_pass_copies_the_next_edit_that_copy(aten_mlp):
    code = aten_mlp.exported_programs()["forward"].graph_module.code
    expected = _run(aten_mlp) * 2
    first = DoubleOutputsPass().apply(aten_mlp)
    assert first.modified
    assert aten_mlp.exported_programs()["forward"].graph_module.code == code  # input intact
    assert OWNED not in aten_mlp.metadata
    torch.testing.assert_close(_run(first.program), expected)
    second = NothingPass().apply(first.program)
    assert not second.modified
    assert second.program.artifact is first.program.artifact  # one copy per run


def test_the_copy_shares_the_tensors(aten_mlp):
    out = NothingPass().apply(aten_mlp).program
    before, after = aten_mlp.exported_programs()["forward"], out.exported_programs()["forward"]
    assert after is not before and after.graph_module is not before.graph_module
    assert before.state_dict and all(after.state_dict[k] is v for k, v in before.state_dict.items())
