"""Running a Program on inputs, at any level, to compare numerics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .levels import Level
from .serialized import pte_bytes

if TYPE_CHECKING:
    import torch

    from .program import Program


def flat_tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in a (nested) output, in pytree order."""
    import torch
    from torch.utils._pytree import tree_flatten

    return [v for v in tree_flatten(value)[0] if isinstance(v, torch.Tensor)]


def load_runtime_program(data: bytes | Path) -> Any:
    """Load .pte bytes, or a .pte file (memory-mapped: no copy of it in this process), in
    ``executorch.runtime``, registering the LLM custom ops first.

    A .pte that uses ``llama::`` ops (custom SDPA, KV-cache update) only loads
    once ``executorch.extension.llm.custom_ops`` is imported in this process.
    """
    from .runnable import load_kernel_libraries, load_program

    load_kernel_libraries()
    return load_program(data)


def load_program_in_runtime(program: Program) -> Any:
    """An EXECUTORCH ``program`` loaded in ``executorch.runtime`` from the bytes its manager
    serialized (a transient contiguous copy: the runtime's bytes loader needs one)."""
    return load_runtime_program(pte_bytes(program.artifact))


def run_method(
    program: Program, method: str, inputs: Sequence[Any], *, runtime_program: Any = None
) -> list[torch.Tensor]:
    """Outputs of ``method`` on ``inputs`` as a flat list of tensors.

    EAGER and ATEN run directly; EDGE through ``exported_program().module()``
    (delegates run their original graphs); EXECUTORCH in ``executorch.runtime``.
    Pass ``runtime_program`` to reuse a loaded program (and its state, e.g. a
    KV cache) across calls.
    """
    import torch
    from torch.utils._pytree import tree_flatten

    with torch.no_grad():
        if program.level == Level.EAGER:
            return flat_tensors(program.modules()[method](*inputs))
        if program.level in (Level.ATEN, Level.EDGE):
            module = program.exported_programs()[method].module()
            return flat_tensors(module(*inputs))
        # keep the runtime program referenced while its method runs (dropping it
        # early crashes the runtime)
        loaded = runtime_program or load_program_in_runtime(program)
        loaded_method = loaded.load_method(method)
        flat = list(tree_flatten(tuple(inputs))[0])
        out = flat_tensors(loaded_method.execute(flat))
        del loaded_method, loaded
        return out


@attrs.frozen
class Comparison:
    """Outputs compared with a reference's: the worst finite difference and every
    non-finite mismatch (a NaN never hides behind ``max``).

    ``max_abs_diff`` is over the elements that are finite on both sides (inf when
    the outputs' count or shapes differ: ``structure`` says how). Non-finite
    values match only themselves (NaN with NaN, +inf with +inf); every other
    element with a non-finite side is counted in one of ``nan`` (NaN where the
    reference is finite), ``inf`` (inf where it is finite), ``finite`` (finite
    where it is NaN or inf) or ``other`` (NaN vs inf, or infs of opposite sign).
    ``nan_both`` counts NaN on both sides: not a mismatch, but no output that is NaN
    proves anything (the model itself computes NaN: a NaN weight or input), so it
    fails ``within`` too. Equal infs pass (a mask can be -inf by design).
    """

    max_abs_diff: float = 0.0
    outputs: int = 0  # elements compared
    nan: int = 0
    inf: int = 0
    finite: int = 0
    other: int = 0
    nan_both: int = 0
    structure: str | None = None

    @property
    def nonfinite(self) -> int:
        """How many elements mismatch because one side is NaN or inf."""
        return self.nan + self.inf + self.finite + self.other

    def within(self, tolerance: float) -> bool:
        """Same structure, no non-finite mismatch, finite difference <= ``tolerance``."""
        return (
            self.structure is None
            and not self.nonfinite
            and not self.nan_both
            and self.max_abs_diff <= tolerance
        )

    def __add__(self, other: Comparison) -> Comparison:
        """Both comparisons together (e.g. the steps of one verification)."""
        return Comparison(
            max(self.max_abs_diff, other.max_abs_diff),
            self.outputs + other.outputs,
            self.nan + other.nan,
            self.inf + other.inf,
            self.finite + other.finite,
            self.other + other.other,
            self.nan_both + other.nan_both,
            self.structure or other.structure,
        )

    def problem(self, got: str = "the .pte", ref: str = "eager") -> str | None:
        """One line for a structural or non-finite mismatch, or None; e.g. "3 of 512
        outputs are NaN in the .pte, finite in eager"."""
        if self.structure:
            return f"{got} and {ref} differ in structure: {self.structure}"
        parts = [
            f"{n} of {self.outputs} outputs are {what}"
            for n, what in (
                (self.nan, f"NaN in {got}, finite in {ref}"),
                (self.inf, f"inf in {got}, finite in {ref}"),
                (self.finite, f"finite in {got}, NaN or inf in {ref}"),
                (self.other, f"a different NaN/inf in {got} than in {ref}"),
                (
                    self.nan_both,
                    f"NaN in {got} and in {ref} (the model itself computes NaN: "
                    "check its weights and inputs)",
                ),
            )
            if n
        ]
        return "; ".join(parts) or None

    def to_json(self) -> dict[str, Any]:
        return {
            "max_abs_diff": self.max_abs_diff,
            "outputs": self.outputs,
            "nonfinite": {
                "nan_where_finite": self.nan,
                "inf_where_finite": self.inf,
                "finite_where_nonfinite": self.finite,
                "other": self.other,
                "nan_in_both": self.nan_both,
            },
            "structure": self.structure,
        }


def compare(got: Sequence[torch.Tensor], ref: Sequence[torch.Tensor]) -> Comparison:
    """Compare paired outputs (``got`` against the reference ``ref``); see ``Comparison``."""
    import torch

    if len(got) != len(ref):
        return Comparison(float("inf"), structure=f"{len(got)} outputs vs {len(ref)}")
    out = Comparison()
    for i, (g, r) in enumerate(zip(got, ref, strict=True)):
        if g.shape != r.shape:
            return Comparison(
                float("inf"),
                structure=f"output {i} has shape {tuple(g.shape)} vs {tuple(r.shape)}",
            )
        if not g.numel():
            continue
        g64, r64 = g.detach().double(), r.detach().double()
        g_fin, r_fin = torch.isfinite(g64), torch.isfinite(r64)
        both = g_fin & r_fin
        same_nonfinite = (g64 == r64) | (g64.isnan() & r64.isnan())
        worst = (g64[both] - r64[both]).abs().max().item() if bool(both.any()) else 0.0
        out = out + Comparison(
            worst,
            g.numel(),
            int((g64.isnan() & r_fin).sum()),
            int((g64.isinf() & r_fin).sum()),
            int((g_fin & ~r_fin).sum()),
            int((~g_fin & ~r_fin & ~same_nonfinite).sum()),
            int((g64.isnan() & r64.isnan()).sum()),
        )
    return out
