"""Deliberately wrong passes, loaded with ``driver ... --plugin tests/driver/wrong_passes.py``."""

from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program
from pteflow.passes import Pass, PassContext, PassInfo, PassResult


@attrs.frozen
class FlipSignPass(Pass):
    """Negate the result of the first linear (a wrong rewrite: outputs change)."""

    info: ClassVar[PassInfo] = PassInfo(name="flip-sign", level_in=Level.ATEN)
    lie: bool = False  # report modified=False anyway

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch

        for ep in program.exported_programs().values():
            g = ep.graph_module.graph
            lin = next(
                n
                for n in g.nodes
                if n.op == "call_function" and n.target == torch.ops.aten.linear.default
            )
            with g.inserting_after(lin):
                neg = g.call_function(torch.ops.aten.neg.default, (lin,))
            neg.meta = dict(lin.meta)
            lin.replace_all_uses_with(neg, delete_user_cb=lambda u, neg=neg: u is not neg)
            ep.graph_module.recompile()
        return PassResult(program, not self.lie)


@attrs.frozen
class NoopAtenPass(Pass):
    """Do nothing at ATEN (filler for long pipelines)."""

    info: ClassVar[PassInfo] = PassInfo(name="noop-aten", level_in=Level.ATEN)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        return PassResult(program, False)


@attrs.frozen
class RaisesAtEdgePass(Pass):
    """Raise a ValueError on an EDGE program (a pass with a bug)."""

    info: ClassVar[PassInfo] = PassInfo(name="raises-at-edge", level_in=Level.EDGE)
    message: str = "boom at edge"

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        raise ValueError(self.message)


@attrs.frozen
class RaisesAtAtenPass(Pass):
    """Raise a ValueError on an ATEN program (a pass with a bug)."""

    info: ClassVar[PassInfo] = PassInfo(name="raises-at-aten", level_in=Level.ATEN)
    message: str = "boom at aten"

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        raise ValueError(self.message)


@attrs.frozen
class IntegerInputsPass(Pass):
    """Give an EXECUTORCH program integer example inputs (a bug the runtime rejects when
    emit runs the written file: the method takes floats)."""

    info: ClassVar[PassInfo] = PassInfo(name="integer-inputs", level_in=Level.EXECUTORCH)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        inputs = {m: tuple(x.long() for x in xs) for m, xs in program.example_inputs.items()}
        return PassResult(program.evolve(example_inputs=inputs), True)


@attrs.frozen
class SwallowsCtrlCPass(Pass):
    """Receive a Ctrl-C and lose it, as upstream code can: ``then="return"`` catches the
    KeyboardInterrupt and returns the program (an optional import's broad ``except``);
    ``then="import-error"`` turns it into the ImportError pybind11 raises when a module's
    initialization is interrupted."""

    info: ClassVar[PassInfo] = PassInfo(name="swallows-ctrl-c", level_in=Level.ATEN)
    then: str = "return"

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import signal
        import time

        try:
            signal.raise_signal(signal.SIGINT)
            time.sleep(1.0)  # the handler runs here at the latest
        except KeyboardInterrupt as e:
            if self.then == "import-error":
                raise ImportError("initialization failed") from e
        return PassResult(program, False)
