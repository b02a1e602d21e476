"""Which ops of a pipeline's graph its backends can take (``driver check-coverage``).

Runs the pipeline up to its partitioners (source, quantization, export and edge passes)
and asks each partitioner's backend module's ``coverage(program)``; needs no SDK.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from .options import Checks, Echo, ModelOptions, PipelineOptions


@attrs.frozen
class CoverageResult:
    """Per backend, its coverage check's result (``.nodes``, ``.gaps``, ``.render()``)."""

    by_backend: dict[str, Any]
    report: dict[str, Any]

    @property
    def gaps(self) -> int:
        """How many nodes no backend builder takes."""
        return sum(len(r.gaps) for r in self.by_backend.values())


def run_coverage(
    chosen: PipelineOptions,
    model: ModelOptions,
    *,
    checks: Checks = "boundaries",
    json_path: str | None = None,
    echo: Echo | None = None,
) -> CoverageResult:
    """Check the coverage of every partitioner of the pipeline that has a check.

    ``json_path``: also write the per-node coverage there (checked before any work).

    Raises:
        UserError: ``no_delegate``; no partitioner with a coverage check; an unwritable
            ``json_path``; what building the passes or loading the model refuses.
    """
    import importlib

    from pteflow.ir import Level
    from pteflow.ir.errors import UserError
    from pteflow.passes import PassManager

    from .resolve import build, load_model, source_facts, specs_for

    def say(text: str = "") -> None:
        if echo is not None:
            echo(text + "\n")

    if chosen.no_delegate:
        raise UserError("check-coverage asks what a backend takes; drop --no-delegate")
    pipe, specs = specs_for(chosen)
    registry, passes = build(specs, chosen.plugins)
    if json_path:
        from .outputs import check_file

        check_file(Path(json_path), "--json")  # before any work
    partitioners = [p for p in passes if p.contract.ordered and p.contract.delegation]
    checkers = {}
    for p in partitioners:
        backend = p.contract.delegation
        module = importlib.import_module(f"pteflow.backends.{backend}")
        if hasattr(module, "coverage"):
            checkers[backend] = module.coverage
    if not checkers:
        have = ", ".join(sorted({p.contract.delegation for p in partitioners})) or "none"
        raise UserError(
            f"no partition pass of this pipeline has a coverage check (partitioners: {have}); "
            "check-coverage knows qnn (try --pipeline qnn_default)"
        )
    # everything up to the partitioner: source, quantization, export, edge passes
    before = [p for p in passes if p not in partitioners and p.contract.level_out <= Level.EDGE]
    manager = PassManager(before, verify=checks, registry=registry)
    manager.check_available()
    manager.plan(initial_facts=source_facts(pipe))
    loaded = load_model(model, pipe)
    say(f"model: {loaded.description}")
    say(f"running {len(before)} passes up to {', '.join(p.name for p in partitioners)}")
    program = manager.run(loaded.program).program
    report: dict[str, Any] = {"pipeline": pipe.name if pipe else chosen.passes, "backends": {}}
    results = {}
    for backend, check in checkers.items():
        result = results[backend] = check(program)
        say(f"\n{backend}:")
        say(result.render())
        report["backends"][backend] = {
            "nodes": [
                {"method": n.method, "node": n.node, "op": n.op, "status": n.status}
                for n in result.nodes
            ],
            "gaps": [n.node for n in result.gaps],
        }
    if json_path:
        from pteflow.passes.emit.emit import write_atomically

        write_atomically(Path(json_path), json.dumps(report, indent=2).encode())
        say(f"coverage: {json_path}")
    return CoverageResult(results, report)
