"""Small passes for testing the manager: real graph edits on real programs."""

from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.passes import Pass, PassContext, PassInfo, PassResult


@attrs.frozen
class ClaimsQuantizedPass(Pass):
    """Claim quantized.pt2e without quantizing anything (a lying pass)."""

    info: ClassVar[PassInfo] = PassInfo(
        name="claims-quantized", level_in=Level.ATEN, provides={facts.QUANTIZED_PT2E}
    )

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return PassResult(program, False)


@attrs.frozen
class RaisesPass(Pass):
    """Raise a ValueError (a pass with a bug)."""

    info: ClassVar[PassInfo] = PassInfo(name="raises", level_in=Level.ATEN)
    message: str = "boom"

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        raise ValueError(self.message)


@attrs.frozen
class BreaksGraphPass(Pass):
    """Insert a call_module node into the ATen graph (breaks the ATEN invariant)."""

    info: ClassVar[PassInfo] = PassInfo(name="breaks-graph", level_in=Level.ATEN)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch

        for ep in program.exported_programs().values():
            gm = ep.graph_module
            gm.add_submodule("extra", torch.nn.Identity())
            out = next(n for n in gm.graph.nodes if n.op == "output")
            with gm.graph.inserting_before(out):
                gm.graph.call_module("extra", (out.args[0][0],))
            gm.recompile()
        return PassResult(program, True)


@attrs.frozen
class WrongLevelPass(Pass):
    """Declare ATEN -> ATEN but return the program at EAGER."""

    info: ClassVar[PassInfo] = PassInfo(name="wrong-level", level_in=Level.ATEN)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return PassResult(program.evolve(level=Level.EAGER, artifact={}), True)


@attrs.frozen
class ReluToSigmoidPass(Pass):
    """Replace every aten.relu with aten.sigmoid (a real, output-changing rewrite)."""

    info: ClassVar[PassInfo] = PassInfo(name="relu-to-sigmoid", level_in=Level.ATEN)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch

        changed = False
        for ep in program.exported_programs().values():
            for node in ep.graph_module.graph.nodes:
                if node.op == "call_function" and node.target == torch.ops.aten.relu.default:
                    node.target = torch.ops.aten.sigmoid.default
                    changed = True
            ep.graph_module.recompile()
        return PassResult(program, changed)
