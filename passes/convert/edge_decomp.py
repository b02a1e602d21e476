"""ATen -> Edge with partitioners consulted, without upstream's redundant re-traces.

ExecuTorch's ``_gen_edge_manager_for_partitioners`` (what ``to_edge_transform_and_lower``
runs before lowering) re-traces each method with ``run_decompositions`` up to three
times; each re-trace costs seconds on a Llama. Two of them change nothing in
pteflow's programs, and this module skips exactly those, calling upstream's own
functions for every step it keeps (same steps, same order, same arguments):

1. ``run_decompositions({})`` functionalizes. Skipped when the program already is
   functional inference IR: ``dialect == "ATEN"`` (what ``run_decompositions``
   returns; ``torch.export.export`` returns ``"TRAINING"``) and no node calls a
   mutating op (in case a pass edited the graph in place). pteflow's export pass
   functionalizes already, so this trace only repeated that one.
2. The partitioner's decomposition (the default table minus the ops it keeps
   whole): always run when a table target is in the graph (upstream skips it
   otherwise on one of its paths; the same reasoning holds on the other).
3. The EDGE_DO_NOT_DECOMP path's second ``run_decompositions`` (full default table,
   after renaming the supported kept ops): it only decomposes the kept ops the
   partitioner refused. Skipped when no default-table target is left in the graph,
   the test upstream itself uses to skip a decomposition of a functional graph.

A skipped trace is one whose input is already functional and that contains none
of the table's targets, so it could only re-trace the graph unchanged. One target
does not count: ``aten.sym_size.int``. The default table lists it (as a
CompositeImplicitAutograd op to decompose), but re-tracing a ``sym_size`` call emits
a ``sym_size`` call again, so every graph with a dynamic dimension (a Llama's
sequence length) "contains a target" and upstream's test never skips for it.
"""

from __future__ import annotations

from typing import Any


def _functional(program: Any) -> bool:
    """True when ``program`` is functional inference IR (see step 1)."""
    import torch

    if program.dialect != "ATEN":
        return False
    for module in program.graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in module.graph.nodes:
            schema = getattr(node.target, "_schema", None)
            if node.op == "call_function" and schema is not None and schema.is_mutable:
                return False
    return True


def _decompose(program: Any, table: dict[Any, Any]) -> Any:
    """``run_decompositions(table)`` on a functional program, unless no target is in it
    (``aten.sym_size.int`` aside: a re-trace gives it back as it was)."""
    import torch
    from executorch.exir.program._program import contains_any_call_fn_target_op

    changing = table.keys() - {torch.ops.aten.sym_size.int}
    if contains_any_call_fn_target_op(program.graph_module, changing):
        return program.run_decompositions(table)
    return program


def _keep_whole(name: str, program: Any, partitioner: Any) -> tuple[Any, set[Any]]:
    """Decompose for one partitioner, keeping whole the ops it asks for (steps 2-3)."""
    from executorch.exir.program import _program as up

    kept, _ = partitioner.ops_to_not_decompose(program)
    if up._can_skip_using_EDGE_DO_NOT_DECOMP(partitioner, program):
        table = up._default_decomposition_table()
        preserved = {op for op in kept if table.pop(op, None) is not None}
        return _decompose(program, table), preserved
    table = up._default_decomposition_table()
    for op in up._remove_invalid_ops_for_not_decompose(kept):
        table.pop(op, None)
    program = _decompose(program, table)
    # Renames the kept ops the partitioner supports (in place) so the full table
    # below leaves them; restored right after.
    preserved = up._replace_aten_ops_with_transformed_ops(name, program, {name: [partitioner]})
    program = _decompose(program, up._default_decomposition_table())
    up._restore_transformed_ops_to_aten_ops(program)
    return program, set(preserved or ())


def edge_manager_for_partitioners(
    partitioners: list[Any], programs: dict[str, Any], config: Any, constants: Any
) -> Any:
    """What ``_gen_edge_manager_for_partitioners({m: partitioners ...})`` returns, with
    the redundant re-traces skipped (module docstring)."""
    from executorch.exir.program import _program as up

    edge_programs: dict[str, Any] = {}
    all_kept: set[Any] = set()
    for name, program in programs.items():
        program = up._apply_pre_decomposition_transforms(program, partitioners)
        if not _functional(program):
            program = program.run_decompositions({})
        kept: set[Any] = set()
        for partitioner in partitioners:
            program, preserved = _keep_whole(name, program, partitioner)
            kept |= preserved
        edge_programs[name] = up._generate_edge_program(config, program, preserve_ops=list(kept))
        all_kept |= kept
    # As upstream: later transforms' verifiers accept the kept ops.
    config._core_aten_ops_exception_list = list(
        set(config._core_aten_ops_exception_list) | all_kept
    )
    return up.EdgeProgramManager(edge_programs, constants, config, list(all_kept))
