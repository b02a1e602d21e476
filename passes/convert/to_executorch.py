from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts, views
from pteflow.ir.facts_quant import TORCHAO_LINEARS_DELEGATED

from ..base import Pass, PassContext, PassInfo, PassResult, one_of
from .emitter_pages import constants_pages_released


@attrs.frozen
class ToExecutorchPass(Pass):
    """Memory-plan and convert to an ExecuTorch program (EDGE -> EXECUTORCH).

    ``const_prop`` enables ExecuTorch's quant fusion and constant propagation;
    ``alloc_graph_input=False`` lets the caller own input memory (the LLM
    runner does); ``sym_shape_eval`` picks how dynamic shapes are bounded.
    Requires torchao-linears.delegated: torchao's quantize ops have no out variants, so
    an 8da4w linear left outside the delegates fails here ("Missing out variants").
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="to-executorch",
        level_in=Level.EDGE,
        level_out=Level.EXECUTORCH,
        requires={TORCHAO_LINEARS_DELEGATED},
    )
    extract_delegate_segments: bool = True
    alloc_graph_input: bool = True
    const_prop: bool = False
    sym_shape_eval: str = attrs.field(
        default="constraint-based", validator=one_of("upper-bound", "constraint-based")
    )

    @property
    def contract(self) -> PassInfo:
        if not self.const_prop:
            return self.info
        return attrs.evolve(self.info, provides={facts.CONST_PROPAGATED})

    def without_delegation(self) -> ToExecutorchPass:
        """Without quant fusion: ``--no-delegate`` must run the quantize/dequantize ops the
        backend would receive. ``const_prop`` would fuse dq -> op -> q into ExecuTorch's
        own quantized kernels instead (another computation; and in 1.5.1 the portable
        ``quantized_add`` aborts the process on broadcasting inputs, as QNN's 8a8w Llama
        has)."""
        return attrs.evolve(self, const_prop=False) if self.const_prop else self

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch
        from executorch.exir import ExecutorchBackendConfig
        from executorch.exir.passes import MemoryPlanningPass
        from executorch.exir.passes.sym_shape_eval_pass import (
            ConstraintBasedSymShapeEvalPass,
            HintBasedSymShapeEvalPass,
        )

        sym = (
            ConstraintBasedSymShapeEvalPass()
            if self.sym_shape_eval == "constraint-based"
            else HintBasedSymShapeEvalPass()
        )
        config = ExecutorchBackendConfig(
            extract_delegate_segments=self.extract_delegate_segments,
            do_quant_fusion_and_const_prop=self.const_prop,
            memory_planning_pass=MemoryPlanningPass(alloc_graph_input=self.alloc_graph_input),
            sym_shape_eval_pass=sym,
        )
        if _has_quantize_ops(program):
            # their out variants (which to_executorch needs) register on import
            import executorch.kernels.quantized  # noqa: F401
        with torch.no_grad(), constants_pages_released():
            manager = program.artifact.to_executorch(config)
        return PassResult(program.evolve(level=Level.EXECUTORCH, artifact=manager), True)


def _has_quantize_ops(program: Program) -> bool:
    """Quantize/dequantize ops outside delegates (e.g. a --no-delegate QNN graph)."""
    return any(
        facts.op_name(op).startswith("quantized_decomposed.") for op in views.op_histogram(program)
    )
