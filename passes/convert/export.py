from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program

from ..base import Pass, PassContext, PassInfo, PassResult


@attrs.frozen
class TorchExportPass(Pass):
    """Capture every method with torch.export (EAGER -> ATEN).

    Runs under ``torch.no_grad()`` and the MATH SDPA backend, as ExecuTorch's
    LLM flow does: without no_grad a KV-cache model exports training ops.
    Uses the program's example inputs and dynamic shapes per method.
    ``functionalize`` runs ``run_decompositions({})`` afterwards, which also
    flattens torchao's quantized tensor subclasses into plain ops.

    (Not ``ExportPass``: that is ``executorch.exir.pass_base.ExportPass``, a different thing.)
    """

    info: ClassVar[PassInfo] = PassInfo(name="export", level_in=Level.EAGER, level_out=Level.ATEN)
    strict: bool = False
    functionalize: bool = True

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel

        exported = {}
        with sdpa_kernel([SDPBackend.MATH]), torch.no_grad():
            for method, module in program.modules().items():
                ep = torch.export.export(
                    module,
                    tuple(program.example_inputs[method]),
                    dynamic_shapes=program.dynamic_shapes.get(method),
                    strict=self.strict,
                )
                if self.functionalize:
                    ep = ep.run_decompositions({})
                exported[method] = ep
        return PassResult(program.evolve(level=Level.ATEN, artifact=exported), True)
