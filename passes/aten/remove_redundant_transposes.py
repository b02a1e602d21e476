from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program

from ..base import Pass, PassContext, PassInfo, PassResult
from ..quantize.pt2e_prepare import Pt2ePreparePass


@attrs.frozen
class RemoveRedundantTransposesPass(Pass):
    """Drop pairs of transposes (or permutes) that undo each other in the exported graph.

    Requires: an ATen program. Provides: nothing new (fewer ops).
    Wraps ``RemoveRedundantTransposes`` from ``executorch.extension.llm.export``: the one
    "canonical optimization" ``LLMEdgeManager`` runs, right after export and before pt2e
    quantization, for every backend. On ExecuTorch's Llama with the custom SDPA op it
    removes every ``aten.transpose.int`` (2 layers: 20 of 20), which would otherwise become
    ``permute_copy`` ops at edge. Runs before ``pt2e-prepare``, as there: observers between
    the two transposes of a pair would hide it. Works on a copy of the graph; the input is
    untouched. (An ATEN -> ATEN rewrite: it sits in ``post`` until pteflow has an ``aten``
    group.)
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="remove-redundant-transposes", level_in=Level.ATEN, before=(Pt2ePreparePass,)
    )

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import copy

        import torch
        from executorch.exir.program._program import _update_exported_program_graph_module
        from executorch.extension.llm.export.export_passes import RemoveRedundantTransposes

        out, modified = {}, False
        for method, ep in program.exported_programs().items():
            # The upstream pass edits the graph in place: give it a copy (nodes copied,
            # metadata and tensors shared), so the input program stays as it was.
            gm = torch.fx.GraphModule(ep.graph_module, copy.deepcopy(ep.graph_module.graph))
            result = RemoveRedundantTransposes()(gm)
            if result.modified:
                out[method] = _update_exported_program_graph_module(ep, result.graph_module)
                modified = True
            else:
                out[method] = ep
        if not modified:
            return PassResult(program, False)
        return PassResult(program.evolve(artifact=out), True)
