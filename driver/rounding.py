"""Did a quantized ``.pte`` miss its tolerance only because fp32 rounded a tie the other way?

Dynamic activation quantization (8da4w's int8 activations) rounds every activation to a
step of its row's scale. An activation within an ulp of half a step rounds up or down
depending on the last bit of the fp32 arithmetic before it, and XNNPACK orders that
arithmetic differently from torch (and differently on each ISA). One such flip moves a
small model's logits by hundredths: 0.069 on the test Qwen2 at its tenth step on a Xeon
with AVX512-VNNI, where every other step agreed to 1e-6. That is above a tight tolerance
and below any real error, and raising the tolerance would let real errors through.

So a quantized ``.pte`` that misses its tolerance is compared with *rounding variants* of
its reference: the same quantized model with the input of every ``nn.Linear`` moved by
n ulp (n in ``ULPS``; each element's direction drawn from a generator seeded with the
draw's number, so a variant is the same on every run). The tolerance is not widened:
the ``.pte`` passes only if it matches one variant within it, i.e. it computes what the
quantized model computes up to fp32 rounding. Otherwise it fails, and the check reports
how far the variants themselves moved from the reference (its rounding sensitivity).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import attrs

from pteflow.ir import Level, Program
from pteflow.ir.evaluate import Comparison, compare

#: how far each variant moves the linears' inputs, in ulp (tried in this order)
ULPS = (1, 2, 4)
#: variants drawn per distance
DRAWS = 4


@attrs.frozen
class RoundingCheck:
    """The ``.pte`` against the rounding variants of its reference.

    ``matched``: (ulps, draw, the .pte against that variant) of the first variant the
    ``.pte`` matches within the tolerance, or None. ``tried``: variants run.
    ``sensitivity``: the largest max abs diff of a variant from the reference itself.
    ``closest``: the smallest max abs diff of the ``.pte`` from a variant.
    ``unavailable``: why no variant could be run (then nothing is matched).
    """

    matched: tuple[int, int, Comparison] | None = None
    tried: int = 0
    sensitivity: float = 0.0
    closest: float = float("inf")
    unavailable: str | None = None

    def explains(self, subject: str = "the .pte") -> str:
        """One line on the variant matched (only when ``matched``)."""
        assert self.matched is not None
        ulps, draw, comparison = self.matched
        return (
            f"the quantized model with its linear inputs moved by {ulps} ulp (draw "
            f"{draw + 1} of {DRAWS}) matches {subject} to {comparison.max_abs_diff:.3g}: "
            "a dynamically quantized activation rounded the other way (fp32 rounding, "
            "not an error)"
        )

    def why_not(self) -> str:
        """Why the difference is not put down to rounding (only when not ``matched``)."""
        if self.unavailable:
            return f"rounding variants not checked: {self.unavailable}"
        return (
            f"no rounding variant of the reference comes within it ({self.tried} tried, "
            f"linear inputs moved by {ULPS[0]}-{ULPS[-1]} ulp; closest "
            f"{self.closest:.3g}; the variants move up to {self.sensitivity:.3g} from the "
            "reference)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "matched": (
                {"ulps": self.matched[0], "draw": self.matched[1] + 1} | self.matched[2].to_json()
                if self.matched
                else None
            ),
            "tried": self.tried,
            "sensitivity": self.sensitivity if self.tried else None,
            "closest": self.closest if self.tried else None,
            "unavailable": self.unavailable,
        }


@contextlib.contextmanager
def linear_inputs_moved(modules: Sequence[Any], ulps: int, seed: int) -> Iterator[int]:
    """While inside: the floating input of every ``nn.Linear`` in ``modules`` moved by
    ``ulps`` ulp, up or down per element as a generator seeded with ``seed`` draws.
    Yields how many linears are hooked (0: there is nothing to move)."""
    import torch

    generator = torch.Generator().manual_seed(seed)

    def move(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or not x.numel():
            return None
        up = torch.rand(x.shape, generator=generator) < 0.5
        inf = torch.tensor(float("inf"), dtype=x.dtype)
        toward = torch.where(up, inf, -inf)
        for _ in range(ulps):
            x = torch.nextafter(x, toward)
        return (x, *args[1:])

    linears = {  # once each, however many methods share one
        id(m): m for module in modules for m in module.modules() if isinstance(m, torch.nn.Linear)
    }
    hooks = [m.register_forward_pre_hook(move) for m in linears.values()]
    try:
        yield len(linears)
    finally:
        for hook in hooks:
            hook.remove()


def check_rounding(
    modules: Sequence[Any],
    run: Callable[[], Generator[Sequence[Any], None, None]],
    got: Sequence[Sequence[Any]],
    reference: Sequence[Sequence[Any]],
    tolerance: float,
) -> RoundingCheck:
    """Run the rounding variants of a reference until one matches ``got`` within
    ``tolerance``.

    ``modules``: the reference's modules (their linears are moved); ``run``: the
    reference's outputs step by step from its initial state (closed when a variant is
    abandoned); ``got``: the ``.pte``'s outputs per step; ``reference``: the
    reference's own outputs per step. A variant is abandoned at its first step out of
    tolerance, so a real error (usually wrong from the first step) costs a step a
    variant, not the whole run.
    """
    tried, sensitivity, closest = 0, 0.0, float("inf")
    for ulps in ULPS:
        for draw in range(DRAWS):
            against, moved = Comparison(), Comparison()
            with linear_inputs_moved(modules, ulps, seed=draw) as hooked:
                if not hooked:
                    return RoundingCheck(unavailable="the reference has no nn.Linear to move")
                with contextlib.closing(run()) as steps:  # closed: the state is put back
                    for step, outputs in enumerate(steps):
                        against = against + compare(list(got[step]), list(outputs))
                        moved = moved + compare(list(outputs), list(reference[step]))
                        if not against.within(tolerance):
                            break
            tried += 1
            sensitivity = max(sensitivity, moved.max_abs_diff)
            closest = min(closest, against.max_abs_diff)
            if against.within(tolerance):
                return RoundingCheck((ulps, draw, against), tried, sensitivity, closest)
    return RoundingCheck(None, tried, sensitivity, closest)


def variants_source(program: Program) -> Program | None:
    """A private copy of a quantized EAGER program to run its rounding variants from
    later (a later pass may edit its modules in place); None at other levels (no
    ``nn.Linear`` to move). For ``--track-numerics``, which watches every pass anyway
    (``driver bisect`` builds the output again when a probe drifts)."""
    import copy

    if program.level != Level.EAGER:
        return None
    return program.evolve(artifact=copy.deepcopy(program.artifact))


def check_program_rounding(
    program: Program,
    steps: Sequence[tuple[str, tuple[Any, ...]]],
    got: Sequence[Sequence[Any]],
    reference: Sequence[Sequence[Any]],
    tolerance: float,
) -> RoundingCheck:
    """``check_rounding`` with the EAGER ``program`` as the reference, run on ``steps``
    from its initial state (put back after each variant)."""
    from .quantized_reference import reference_steps

    modules = list(program.modules().values())
    run = lambda: reference_steps(program, steps)  # noqa: E731
    return check_rounding(modules, run, got, reference, tolerance)
