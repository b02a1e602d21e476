"""The reference of a quantized run: what the eager model computes with the same
quantization applied (the program right after the last quantizing pass)."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from pteflow.ir import Level, Program
from pteflow.passes.base import Pass
from pteflow.passes.manager import PassObserver

from .models import LoadedModel

if TYPE_CHECKING:
    from .rounding import RoundingCheck


def reference_outputs(
    program: Program, steps: Sequence[tuple[str, tuple[Any, ...]]]
) -> list[list[Any]]:
    """What ``program`` computes, in torch from its initial state, for every step
    (``reference_steps``, all of them)."""
    return list(reference_steps(program, steps))


def reference_steps(
    program: Program, steps: Sequence[tuple[str, tuple[Any, ...]]]
) -> Generator[list[Any], None, None]:
    """What ``program`` computes, in torch from its initial state, step by step; its
    state is put back when the iteration ends or is closed.

    For a verification reference taken mid-pipeline (the program after quantization),
    computed at once so that no copy of the program is kept: EAGER modules run in place
    and their buffers (the KV cache) are put back afterwards; ATEN programs (pt2e
    observers or quantize ops included) run through ``ExportedProgram.module()`` with
    private copies of their mutable buffers.
    """
    import torch

    from pteflow.ir.errors import PipelineError
    from pteflow.ir.evaluate import flat_tensors
    from pteflow.passes.quantize.pt2e import calibration_module

    if program.level == Level.EAGER:
        modules = program.modules()
    elif program.level == Level.ATEN:
        modules = {m: calibration_module(ep) for m, ep in program.exported_programs().items()}
    else:
        raise PipelineError(
            f"a verification reference must be an EAGER or ATEN program, got {program.level.label}"
        )
    saved = {
        (m, n): b.detach().clone()
        for m, mod in modules.items()
        if program.level == Level.EAGER
        for n, b in mod.named_buffers()
    }
    try:
        for method, inputs in steps:
            with torch.no_grad():
                outputs = flat_tensors(modules[method](*inputs))
            yield outputs
    finally:
        with torch.no_grad():
            for (m, n), b in saved.items():
                modules[m].get_buffer(n).copy_(b)


class QuantizedReference(PassObserver):
    """Keeps the program right after the last pass that provides a quantization fact.

    A quantized ``.pte`` is verified against it (the eager model with the same
    quantization applied), not against the float model. It watches one rank of the
    planned order; when the pass cache restores the run past that rank, the pass is
    not seen and ``rebuild`` recomputes the program from the cache or the model, so
    this observer does not turn the cache off (``needs_every_pass`` only when it
    cannot rebuild: an input program that is not EAGER).
    """

    flag = "--verify (quantized reference)"

    def __init__(
        self,
        ordered: Sequence[Pass],
        rank: int,
        *,
        needs_every_pass: bool,
        steps: Sequence[tuple[str, tuple[Any, ...]]] = (),
    ) -> None:
        self.ordered = tuple(ordered)
        self.steps = tuple(steps)
        self.rank = rank  # of the last quantizing pass in the planned order
        self.pass_name = self.ordered[rank].name
        self.needs_every_pass = needs_every_pass
        self.outputs: list[list[Any]] | None = None  # per step (no copy of the program)
        self.rebuilt = False

    @classmethod
    def for_run(cls, ordered: Sequence[Pass], model: LoadedModel) -> QuantizedReference | None:
        """The observer for a planned order, or None when no pass quantizes."""
        from pteflow.ir import facts

        ranks = [r for r, p in enumerate(ordered) if p.contract.provides & facts.QUANTIZATION]
        if not ranks:
            return None
        return cls(
            ordered,
            ranks[-1],
            needs_every_pass=model.program.level != Level.EAGER,
            steps=model.steps,
        )

    @property
    def label(self) -> str:
        return f"quantized eager (after {self.pass_name})"

    def after(self, rank: int, pass_: Any, program_out: Program, record: Any) -> None:
        if rank == self.rank:
            self.outputs = reference_outputs(program_out, self.steps)

    def rebuild(self, model: LoadedModel, *, verify: Any, registry: Any, cache: Any) -> None:
        """Recompute the reference the run did not see (the cache restored past it)."""
        if self.outputs is not None:
            return
        program = self.program(model, verify=verify, registry=registry, cache=cache)
        self.outputs = reference_outputs(program, self.steps)
        self.rebuilt = True

    def program(self, model: LoadedModel, *, verify: Any, registry: Any, cache: Any) -> Program:
        """The quantized program again, from a fresh eager model (``model.reference``
        built again): the longest cached prefix up to the quantizing pass is restored
        (an ATEN result such as ``pt2e-convert``'s is stored whole), the rest of the
        prefix is re-run (EAGER results are not stored, so ``quantize-8da4w`` runs
        again: seconds)."""
        from pteflow.passes import PassManager

        from .models.reference import fresh_copy

        program = model.program.evolve(artifact=fresh_copy(model.reference))
        prefix = self.ordered[: self.rank + 1]
        first = 0
        if cache is not None:
            try:
                first, program = cache.session(prefix, program).resume(program)
            except Exception:  # an unreadable cache only means: run the prefix
                first = 0
        if first < len(prefix):
            manager = PassManager(prefix[first:], verify=verify, registry=registry)
            program = manager.run(program).program
        return program

    def rounding_check(
        self,
        model: LoadedModel,
        got: Sequence[Sequence[Any]],
        tolerance: float,
        *,
        verify: Any,
        registry: Any,
        cache: Any,
    ) -> RoundingCheck:
        """``got`` (the .pte's outputs per step) against the rounding variants of this
        reference (``driver.rounding``); the program is built again for it."""
        from .rounding import RoundingCheck, check_program_rounding

        assert self.outputs is not None
        level = self.ordered[self.rank].info.level_out
        if level != Level.EAGER:
            return RoundingCheck(
                unavailable=f"the reference after {self.pass_name} is an {level.label} graph "
                "(variants move the inputs of an eager model's nn.Linear layers)"
            )
        program = self.program(model, verify=verify, registry=registry, cache=cache)
        return check_program_rounding(program, self.steps, got, self.outputs, tolerance)
