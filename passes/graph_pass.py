"""The per-method graph pass: rewrite each method's ExportedProgram in place, on a copy.

The copy-or-mutate rule, the one every ``GraphPass`` follows:

    A graph pass edits in place, and only a copy its run made. The first graph pass that
    meets a program's artifact copies it once (``own``): graphs, node metadata, graph
    signatures and the state-dict and constants mappings are new objects; the tensors in
    them are shared with the input. The copy is marked owned in ``Program.metadata``, and
    the graph passes after it on that artifact edit the same copy: one copy per run of
    consecutive graph passes, not one per pass. So ``rewrite`` may change a graph, node
    metadata, the signature, and put a new tensor into a mapping, but never writes into a
    tensor; and the program the run started from, or any pass's input before the first
    graph pass, stays as it was.

After each rewrite the base lifts new constants into placeholders and refreshes the graph
signature (what ExecuTorch does once after its own pass lists; after each pass it gives the
same graph). ``modified`` is decided by comparing each graph's code
and node metadata before and after (``fingerprint``), because upstream passes report
``modified=True`` whether or not they changed anything.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import attrs

from pteflow.ir import Program

from .base import Pass, PassContext, PassResult

if TYPE_CHECKING:
    from torch.export import ExportedProgram

#: Program.metadata key: ``id()`` of the artifact a graph pass copied and later graph passes
#: may edit in place (a leading ``_`` keeps it out of the .pte's constant methods).
OWNED = "_graph_pass_owned"


def own(program: Program) -> Program:
    """``program`` with an artifact graph passes may edit in place (see the module doc)."""
    if program.metadata.get(OWNED) == id(program.artifact):
        return program
    memo: dict[int, Any] = {}
    for ep in program.exported_programs().values():
        for tensor in (*ep.state_dict.values(), *ep.constants.values()):
            memo[id(tensor)] = tensor  # shared, not copied
    artifact = copy.deepcopy(program.artifact, memo)
    return program.evolve(artifact=artifact, metadata={**program.metadata, OWNED: id(artifact)})


def fingerprint(gm: Any) -> tuple[str, tuple[Any, ...]]:
    """The graph's code and each node's metadata (keys, and values that are plain data)."""

    def summary(value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, dict):
            return ("dict", tuple(sorted(map(str, value))))
        return type(value).__name__

    nodes = tuple(
        (n.name, tuple(sorted((k, summary(v)) for k, v in n.meta.items() if k != "stack_trace")))
        for n in gm.graph.nodes
    )
    return gm.code, nodes


def settle(ep: ExportedProgram) -> None:
    """Lift constants a rewrite added into placeholders and refresh the signature, in place."""
    from executorch.exir.program._program import (
        _get_updated_graph_signature,
        lift_constant_tensor_pass,
    )

    lift_constant_tensor_pass(ep)
    ep._graph_signature = _get_updated_graph_signature(ep.graph_signature, ep.graph_module)
    ep._validate()


@attrs.frozen
class GraphPass(Pass):
    """Base of the passes that rewrite each method's graph (not itself a pass: no ``info``)."""

    def rewrite(self, method: str, ep: ExportedProgram) -> None:
        """Rewrite ``ep`` (the run's own copy) in place, by the rule in the module doc."""
        raise NotImplementedError(f"{type(self).__name__}.rewrite")

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch

        program = own(program)
        modified = False
        for method, ep in program.exported_programs().items():
            before = fingerprint(ep.graph_module)
            with torch.no_grad():
                self.rewrite(method, ep)
                settle(ep)
            modified |= fingerprint(ep.graph_module) != before
        return PassResult(program, modified)
