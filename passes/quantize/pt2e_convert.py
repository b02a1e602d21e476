from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.facts_quant import PT2E_NO_OBSERVERS

from ..base import Pass, PassContext, PassInfo, PassResult


@attrs.frozen
class Pt2eConvertPass(Pass):
    """Replace calibrated observers by quantize/dequantize ops (convert_pt2e).

    Requires: pt2e.calibrated.
    Provides: quantized.pt2e; the observers are gone (pt2e.observed and
    pt2e.calibrated no longer hold).

    Runs ``convert_pt2e`` (which folds the weight quantization into int8
    constants) and ``DuplicateDynamicQuantChainPass``, as
    ``LLMEdgeManager.pt2e_quantize`` does. ExecuTorch then exports the
    converted module a second time (a full retrace, plus decompositions) to
    get an ExportedProgram back; this pass rebuilds the ExportedProgram around
    the converted graph instead (constants lifted back into placeholders,
    ``meta['val']`` computed for the new nodes only). The graph is the one the
    second export gives, op for op, without its cost.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="pt2e-convert",
        level_in=Level.ATEN,
        requires={facts.PT2E_CALIBRATED},
        provides={facts.QUANTIZED_PT2E, PT2E_NO_OBSERVERS},
        invalidates={facts.PT2E_OBSERVED, facts.PT2E_CALIBRATED},
    )

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        from . import pt2e

        converted = {}
        for method, ep in program.exported_programs().items():
            n = len(pt2e.observer_nodes(ep.graph_module))
            if not n and method in program.metadata.get(pt2e.UNQUANTIZED, ()):
                converted[method] = ep  # float, as pt2e-prepare{allow_unquantized} left it
                continue
            converted[method] = pt2e.convert(ep)
            ctx.log(f"{method}: converted {n} observer(s)")
        # every method left in float (allow_unquantized): nothing is pt2e-quantized
        left = set(program.metadata.get(pt2e.UNQUANTIZED, ()))
        withheld = frozenset({facts.QUANTIZED_PT2E}) if left >= set(converted) else frozenset()
        return PassResult(program.evolve(artifact=converted), True, withheld)
