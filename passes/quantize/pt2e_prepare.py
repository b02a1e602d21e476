from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError, PipelineError
from pteflow.ir.facts_quant import PT2E_NO_OBSERVERS

from ..base import Pass, PassContext, PassInfo, PassResult, one_of
from .pt2e import QUANTIZERS, UNQUANTIZED


@attrs.frozen
class Pt2ePreparePass(Pass):
    """Insert a pt2e quantizer's observers into the exported graph (prepare_pt2e).

    Requires: an ATEN program not quantized by a source pass (export_llama
    refuses ``-qmode`` together with ``--pt2e_quantize``).
    Provides: pt2e.observed.

    ``quantizer``: ``xnnpack-dynamic`` (export_llama's ``--pt2e_quantize
    xnnpack_dynamic``: per-channel int8 weights, dynamic int8 activations),
    ``xnnpack-dynamic-qc4`` (the same with int4 weights) or ``xnnpack-static``
    (static per-tensor activations; calibration decides their ranges);
    ``qnn-16a4w``, ``qnn-8a8w``, ``qnn-16a16w`` (export_llama's ``--pt2e_quantize
    qnn_*``: ``QnnQuantizer`` for HTP, static activations, so calibrate).

    ExecuTorch runs prepare_pt2e on ``ep.module()`` and exports the converted
    module a second time; this pass prepares the exported program's own
    (lifted) graph, so pt2e-convert can hand back an ExportedProgram without
    that second export. Until then the program's graphs hold the observers as
    ``call_module`` nodes, which torch.export's verifier does not accept.

    A method the quantizer finds nothing in is refused: a quantization pipeline that
    quantizes nothing is almost always the wrong quantizer for the model.
    ``allow_unquantized=true`` leaves such a method in float instead (what upstream's
    prepare_pt2e does; the pass log says which methods), for flows that compile
    arbitrary models with one quantizer, like ExecuTorch's backend test suite.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="pt2e-prepare",
        level_in=Level.ATEN,
        provides={facts.PT2E_OBSERVED},
        invalidates={PT2E_NO_OBSERVERS},
    )
    quantizer: str = attrs.field(default="xnnpack-dynamic", validator=one_of(*QUANTIZERS))
    allow_unquantized: bool = False

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        from . import pt2e

        source = program.facts & {facts.QUANTIZED_8DA4W, facts.QUANTIZED_INT8_WEIGHT}
        if source:
            raise PipelineError(
                f"pt2e-prepare: the program is already quantized "
                f"({', '.join(sorted(f.name for f in source))}); use either a source weight "
                "quantization pass or pt2e, not both (export_llama refuses both as well)"
            )
        prepared, unquantized = {}, []
        for method, ep in program.exported_programs().items():
            if pt2e.observer_nodes(ep.graph_module):
                raise PipelineError(
                    f"pt2e-prepare: method {method!r} already has pt2e "
                    "observers; run pt2e-convert before preparing again"
                )
            new = pt2e.prepare(ep, pt2e.make_quantizer(self.quantizer))
            n = len(pt2e.observer_nodes(new.graph_module))
            if not n and self.allow_unquantized:
                ctx.log(f"{method}: nothing to quantize; left unquantized (allow_unquantized)")
                unquantized.append(method)
            elif not n:
                what = "linear layers" + (
                    ", convolutions and their neighbours"
                    if self.quantizer == "xnnpack-static"
                    else ""
                )
                if self.quantizer.startswith("qnn-"):
                    what = "the ops QNN HTP runs quantized"
                raise ModelError(
                    f"pt2e-prepare: the {self.quantizer} quantizer found nothing "
                    f"to quantize in method {method!r} (it quantizes {what}); "
                    "pt2e-prepare{allow_unquantized=true} compiles it unquantized"
                )
            else:
                ctx.log(f"{method}: {n} observer(s)")
            prepared[method] = new
        metadata = {**program.metadata, UNQUANTIZED: tuple(unquantized)}
        return PassResult(program.evolve(artifact=prepared, metadata=metadata), True)
