from __future__ import annotations

from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts, views
from pteflow.ir.errors import PipelineError
from pteflow.ir.facts_quant import TORCHAO_LINEARS_DELEGATED
from pteflow.passes.base import Pass, PassContext, PassInfo, PassResult
from pteflow.passes.convert.to_executorch import ToExecutorchPass

from .partition_xnnpack import PartitionXnnpackPass
from .partition_xnnpack_dq import PartitionXnnpackDqPass

#: Re-exported: the fact and its checker live in ``pteflow.ir.facts``.
LINEAR_CANONICAL = facts.LINEAR_CANONICAL
check_linear_canonical = facts.check_linear_canonical


# --------------------------------------------------------------------------- the pass


@attrs.frozen
class ConvertToLinearPass(Pass):
    """Fuse linears left outside delegates back into aten.linear (permute + mm/addmm -> linear).

    Requires: an edge program built with ``check_ir_validity=false`` (``edge.ir-relaxed``):
    ``aten.linear`` is not a core ATen op, so a strict edge verifier refuses the result.
    Requires also torchao-linears.delegated: upstream rebuilds each ``nn.Linear`` source
    partition from its inputs, so on a torchao 8da4w linear left outside the delegates it
    drops the dequantize ops and writes ``aten.linear(x, int8 weight)``, which no kernel
    runs; a partition pass must take those linears first (pt2e's stay runnable).
    Provides: linear.canonical (the portable/optimized kernels then run ``op_linear``
    instead of a materialized transpose and ``op_mm``).
    Wraps XNNPACK's ``ConvertToLinearPass`` through ``EdgeProgramManager.transform``, as
    ``LLMEdgeManager.to_executorch`` does, after partitioning (delegates keep their own
    linears). Upstream TODO (pytorch/executorch#10499): the pass is not sound once constants
    are propagated, so it runs before to-executorch (which folds constants with
    ``const_prop=true``) and refuses a program that already has ``const.propagated``.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="convert-to-linear",
        level_in=Level.EDGE,
        requires={facts.EDGE_IR_RELAXED, TORCHAO_LINEARS_DELEGATED},
        provides={LINEAR_CANONICAL},
        after=(PartitionXnnpackDqPass, PartitionXnnpackPass),
        before=(ToExecutorchPass,),
    )

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch
        from executorch.backends.xnnpack._passes.convert_to_linear import (
            ConvertToLinearPass as Upstream,
        )

        if facts.CONST_PROPAGATED in program.facts:
            raise PipelineError(
                "convert-to-linear must run before constant propagation "
                "(pytorch/executorch#10499), but the program already has "
                "const.propagated; schedule it before the pass that folds "
                "constants"
            )
        if not _candidates(program, Upstream):  # its re-trace would change nothing
            return PassResult(program, False)
        before = views.op_histogram(program)
        with torch.no_grad():
            manager = program.artifact.transform([Upstream()])
        out = program.evolve(artifact=manager)
        if views.op_histogram(out) == before:  # the upstream pass always says "modified"
            return PassResult(program, False)
        return PassResult(out, True)


def _candidates(program: Program, upstream: Any) -> bool:
    """Whether any graph has a node the upstream pass would rewrite.

    Asks what the pass itself asks (its ``linear_modules`` source partitions holding one of
    its ``targets``), without re-tracing: on an XNNPACK pipeline every linear is usually
    inside a delegate, and the pass's re-trace of the whole program is then wasted (1 s at
    the stories size). Any graph module counts, nested ones too: a false "yes" only runs
    the pass.
    """
    import torch
    from torch.fx.passes.utils.source_matcher_utils import get_source_partitions

    targets = set(upstream.targets)
    for root in program.graph_modules().values():
        for gm in root.modules():
            if not isinstance(gm, torch.fx.GraphModule):
                continue
            found = get_source_partitions(gm.graph, upstream.linear_modules)
            if any(n.target in targets for ps in found.values() for p in ps for n in p.nodes):
                return True
    return False
