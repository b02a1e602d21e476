"""What every partition pass shares: lower with one partitioner, checked as upstream checks it.

``to_edge_transform_and_lower(programs, partitioner=[p1, p2, ...])`` does three things that
pteflow splits into passes: (1) to-edge, keeping whole the ops every partitioner asks for
(the to-edge pass does this with the partitioners of its ``keep_whole_for``, which the
planner sets to the partition passes scheduled after it: ``keep_whole``), (2)
``EdgeProgramManager.to_backend(p)`` once per partitioner, in order (one partition pass
each, here), then (3) two checks once all partitioners have run:
``_sanity_check_graph_for_non_decomp_ops`` (an op a partitioner asked to keep whole and says
it supports must not be left outside a delegate) and the edge verifier under the
to-edge ``EdgeCompileConfig``. ``lower`` does (2), and (3) once every partition pass
to-edge kept ops whole for has lowered (the edge program records them), so the split is
checked exactly as the fused call is.

Two upstream details this module absorbs:

* ``to_backend`` returns a manager whose ``compile_config`` is a fresh
  ``EdgeCompileConfig(_check_ir_validity=False)``: the to-edge options
  (``_check_ir_validity``, ``_skip_dim_order``, the preserved-op exception list) are
  silently dropped. ``lower`` puts the config it was given back, so the level invariant,
  later ``EdgeProgramManager.transform`` calls and to-executorch keep reading the options
  the pipeline chose (and ``edge.ir-relaxed`` keeps meaning something after partitioning).
* ``XnnpackPartitioner.partition`` (and ``CoreMLPartitioner.partition``) inspects the call
  stack and logs a "deprecated to_edge() + to_backend() workflow" warning unless
  ``to_edge_transform_and_lower`` is on it. pteflow's flow is the fused one split in
  passes, so that one record is filtered out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import attrs

from pteflow.ir import Program, views
from pteflow.ir.errors import InvariantError, PipelineError

from ..base import PassContext, PassInfo, PassResult, option_error
from .arbitration import record as record_claims
from .keep_whole import CONSULTED
from .preprocess_copies import copies_one_at_a_time
from .recompiled_once import recompiled_once
from .upstream_caches import forget_graphs_upstream_keeps


class PartitionPass(Protocol):
    """What ``lower`` needs of a partition pass."""

    @property
    def name(self) -> str: ...

    @property
    def contract(self) -> PassInfo: ...

    def make_partitioner(self) -> Any: ...

    def describe(self) -> str: ...

    def spec(self) -> str: ...


#: Program.metadata key: the partition passes that lowered the program so far, in order.
#: The last partition pass of a run re-creates their partitioners for the final checks.
LOWERED_BY = "_lowered_by"
#: ``CONSULTED`` (Program.metadata, set by to-edge): the specs of the partition passes it kept
#: ops whole for. When present, a partition pass that is not among them is refused.


def is_bool(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: a real bool (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise option_error(
            instance.info.name, attribute.name, f"must be true or false, got {value!r}"
        )


#: partitioners that warn about "to_edge() + to_backend()" unless called from the fused API
_DEPRECATION_LOGGERS = (
    "executorch.backends.xnnpack.partition.xnnpack_partitioner",
    "executorch.backends.apple.coreml.partition.coreml_partitioner",
)


class _DropDeprecationWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "DEPRECATION WARNING" not in record.getMessage()


@contextlib.contextmanager
def _no_to_backend_deprecation() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _DEPRECATION_LOGGERS]
    flt = _DropDeprecationWarning()
    for logger in loggers:
        logger.addFilter(flt)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(flt)


def lower(pass_: PartitionPass, program: Program, ctx: PassContext) -> PassResult:
    """Lower ``program`` with ``pass_.make_partitioner()``; final checks after the last one.

    The last one: the pass after which every partition pass to-edge kept ops whole for has
    lowered (``CONSULTED``), or any pass on a program that does not record them.

    ``modified`` is true exactly when the partitioner took something (a new delegate);
    when it takes nothing the input graph is returned as it was.

    Raises:
        PipelineError: the edge program records which partitioners to-edge consulted
            (``CONSULTED``) and this pass is not one of them.
        InvariantError: after the last partitioner, an op kept whole for a partitioner that
            claims to support it was left outside every delegate, or the edge verifier fails.
    """
    import torch

    consulted = program.metadata.get(CONSULTED)
    if consulted is not None and pass_.spec() not in consulted:
        raise PipelineError(
            f"{pass_.describe()}: the edge program was built without asking this partitioner "
            "which ops to keep whole, so it may lower decomposed ops (e.g. plain mm for 8da4w "
            "linears); run to-edge and the partition passes in one pipeline"
        )
    manager = program.artifact
    config = manager.compile_config
    before = len(views.delegation_summary(program))
    partitioner = pass_.make_partitioner()
    try:
        with (
            torch.no_grad(),
            _no_to_backend_deprecation(),
            copies_one_at_a_time(partitioner),
            recompiled_once(),
        ):
            lowered = manager.to_backend(partitioner)
    finally:
        forget_graphs_upstream_keeps()  # each partition pass's graph: freed when replaced
    lowered.compile_config = config  # to_backend resets it; see the module docstring
    done = (*program.metadata.get(LOWERED_BY, ()), pass_)
    metadata = {**program.metadata, LOWERED_BY: done}
    candidate = program.evolve(artifact=lowered, metadata=metadata)
    modified = len(views.delegation_summary(candidate)) != before
    out = candidate if modified else program.evolve(metadata=metadata)
    out = out.evolve(metadata=record_claims(pass_.name, program, out))
    if consulted is None or set(consulted) <= {p.spec() for p in done}:
        check_lowered(out, [p.make_partitioner() for p in done])
    # took nothing (e.g. XNNPACK after Vulkan took all it could): it delegated nothing
    return PassResult(out, modified, withheld=frozenset() if modified else pass_.contract.provides)


def check_lowered(program: Program, partitioners: Sequence[Any]) -> None:
    """The checks ``to_edge_transform_and_lower`` runs after its last partitioner.

    For each method, in partitioner order: no node whose op some partitioner so far asked
    to keep whole (``ops_to_not_decompose``) and this partitioner's ``check_op_support``
    accepts is left outside a delegate; then, when the config checks IR validity, the edge
    verifier with those ops allowed. Same functions, same order, same arguments as upstream.
    """
    import torch
    from executorch.exir.program._program import (
        _can_skip_using_EDGE_DO_NOT_DECOMP,
        _remove_invalid_ops_for_not_decompose,
        _sanity_check_graph_for_non_decomp_ops,
    )
    from executorch.exir.verification.verifier import EXIREdgeDialectVerifier

    manager = program.artifact
    config = manager.compile_config
    for method in sorted(manager.methods):
        ep = manager.exported_program(method)
        keep: set[torch._ops.OpOverload] = set()
        for partitioner in partitioners:
            ops, check_op_support = partitioner.ops_to_not_decompose(ep)
            if not _can_skip_using_EDGE_DO_NOT_DECOMP(partitioner, ep):
                ops = _remove_invalid_ops_for_not_decompose(ops)
            keep |= set(ops)
            try:
                _sanity_check_graph_for_non_decomp_ops(
                    method,
                    ep,
                    keep,
                    check_op_support,
                    generate_error=True,
                    partitioner_name=type(partitioner).__name__,
                )
            except RuntimeError as e:
                first = str(e).strip().splitlines()[0]
                raise InvariantError(
                    f"method {method!r}: {first} (an op kept whole for "
                    f"{type(partitioner).__name__}, which says it supports "
                    "it, is neither delegated nor decomposed)"
                ) from e
        if config._check_ir_validity:
            try:
                EXIREdgeDialectVerifier(
                    edge_compile_config=config,
                    class_only=True,
                    preserve_ops=list(config.preserve_ops) + list(keep),
                )()(ep.graph_module)
            except Exception as e:  # SpecViolationError and ExportError share no base
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise InvariantError(
                    f"method {method!r}: ExecuTorch's edge verifier after lowering: {first}"
                ) from e
