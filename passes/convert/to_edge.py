from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.facts_quant import PT2E_NO_OBSERVERS

from ..base import Pass, PassContext, PassInfo, PassResult
from ..partition.keep_whole import CONSULTED, partition_passes
from .edge_decomp import edge_manager_for_partitioners

__all__ = ["CONSULTED", "ToEdgePass", "constant_methods"]


def _specs(value: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):  # one spec
        return (value,) if value else ()
    return tuple(value)


def constant_methods(program: Program) -> dict[str, Any]:
    """Metadata entries that become constant methods of the .pte: scalars, and non-empty
    lists of scalars (``get_eos_ids``: the method returns one value per item, which is
    what ExecuTorch's LLM runner reads)."""
    return {
        k: list(v) if isinstance(v, list | tuple) else v
        for k, v in program.metadata.items()
        if not k.startswith("_") and _constant(v)
    }


def _constant(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return bool(value) and all(isinstance(v, bool | int | float | str) for v in value)
    return isinstance(value, bool | int | float | str)


@attrs.frozen
class ToEdgePass(Pass):
    """Convert ATen programs to the Edge dialect (ATEN -> EDGE).

    ``keep_whole_for``: the partition passes (specs, in run order) whose partitioners are
    asked which ops to keep whole (``ops_to_not_decompose``), exactly as
    ``to_edge_transform_and_lower`` does; without that, to_edge decomposes ops (e.g.
    torchao's 8da4w linear) that the backend matches on, and partitioning silently takes
    less or lowers the wrong thing. The planner sets it to the partition passes scheduled
    after to-edge (``pteflow.passes.partition.keep_whole``); ``driver plan`` shows it.
    ``check_ir_validity=False`` is what post-lowering passes that produce
    non-core ops (ConvertToLinearPass) need.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="to-edge",
        level_in=Level.ATEN,
        level_out=Level.EDGE,
        requires={PT2E_NO_OBSERVERS},  # observers cannot be lowered: convert them first
    )
    check_ir_validity: bool = True
    skip_dim_order: bool = False
    constant_methods: bool = True
    keep_whole_for: tuple[str, ...] | None = attrs.field(default=None, converter=_specs)

    @property
    def contract(self) -> PassInfo:
        if self.check_ir_validity:
            return self.info
        return attrs.evolve(self.info, provides={facts.EDGE_IR_RELAXED})

    def compile_config(self) -> Any:
        from executorch.exir import EdgeCompileConfig

        return EdgeCompileConfig(
            _check_ir_validity=self.check_ir_validity, _skip_dim_order=self.skip_dim_order
        )

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch
        from executorch.exir import to_edge

        eps = program.exported_programs()
        consts = constant_methods(program) if self.constant_methods else None
        sources = tuple(self.keep_whole_for or ())
        partitioners = [p.make_partitioner() for p in partition_passes(sources)]
        with torch.no_grad():
            if partitioners:
                # The public API fuses this step with lowering; pteflow keeps
                # partitioning as separate passes, so it runs the step itself
                # (upstream's functions, minus re-traces that change nothing).
                manager = edge_manager_for_partitioners(
                    partitioners, eps, self.compile_config(), consts
                )
            else:
                manager = to_edge(
                    eps, constant_methods=consts, compile_config=self.compile_config()
                )
        # Partition passes check they were consulted here: a partitioner that was
        # not asked what to keep whole may lower a wrongly decomposed graph.
        metadata = {**program.metadata, CONSULTED: sources}
        return PassResult(
            program.evolve(level=Level.EDGE, artifact=manager, metadata=metadata), True
        )
