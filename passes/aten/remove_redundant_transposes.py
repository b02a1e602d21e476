from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs

from pteflow.ir import Level

from ..base import PassInfo
from ..graph_pass import GraphPass
from ..quantize.pt2e_prepare import Pt2ePreparePass

if TYPE_CHECKING:
    from torch.export import ExportedProgram


@attrs.frozen
class RemoveRedundantTransposesPass(GraphPass):
    """Drop pairs of transposes (or permutes) that undo each other in the exported graph.

    Requires: an ATen program. Provides: nothing new (fewer ops).
    Wraps ``RemoveRedundantTransposes`` from ``executorch.extension.llm.export``: the one
    "canonical optimization" ``LLMEdgeManager`` runs, right after export and before pt2e
    quantization, for every backend. On ExecuTorch's Llama with the custom SDPA op it
    removes every ``aten.transpose.int`` (2 layers: 20 of 20), which would otherwise become
    ``permute_copy`` ops at edge. Runs before ``pt2e-prepare``, as there: observers between
    the two transposes of a pair would hide it. A ``GraphPass``: it edits the run's own
    copy of the graph (``pteflow.passes.graph_pass``); the input is untouched.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="remove-redundant-transposes", level_in=Level.ATEN, before=(Pt2ePreparePass,)
    )

    def rewrite(self, method: str, ep: ExportedProgram) -> None:
        from executorch.extension.llm.export.export_passes import RemoveRedundantTransposes

        RemoveRedundantTransposes()(ep.graph_module)
