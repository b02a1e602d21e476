"""Check a written .pte against the eager model, in ExecuTorch's runtime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from pteflow.ir.evaluate import Comparison
from pteflow.passes.base import Pass

from .models import LoadedModel

if TYPE_CHECKING:
    from .quantized_reference import QuantizedReference
    from .rounding import RoundingCheck


@attrs.frozen
class Verification:
    """The outcome of ``verify_pte``: compared (``ok`` or failed), or ``skipped`` with why.

    ``comparison`` is the ``.pte`` against ``against`` (eager, or the quantized eager
    model of a quantized run); ``fp32`` is the ``.pte`` against the float eager model
    when that is not the reference (reported, not a criterion). ``error``: the
    ``.pte`` did not load or execute in ``executorch.runtime`` (a failed verdict).
    ``rounding``: a quantized ``.pte`` out of tolerance against its rounding variants
    (``driver.rounding``); it passes if one matches within the tolerance.
    """

    comparison: Comparison
    tolerance: float
    steps: int
    against: str = "eager"  # what the .pte was compared with
    skipped: str | None = None
    error: str | None = None
    fp32: Comparison | None = None
    rounding: RoundingCheck | None = None

    @property
    def max_abs_diff(self) -> float:
        return self.comparison.max_abs_diff

    @property
    def ok(self) -> bool:
        compared = self.skipped is None and self.error is None
        return compared and (self.comparison.within(self.tolerance) or self.rounded)

    @property
    def rounded(self) -> bool:
        """Out of tolerance, but within it of a rounding variant of the reference."""
        return (
            self.rounding is not None
            and self.rounding.matched is not None
            and self.comparison.problem() is None
        )

    @property
    def failed(self) -> bool:
        """Compared and out of tolerance (a skipped verification has not failed)."""
        return self.skipped is None and not self.ok

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else ("ok" if self.ok else "failed")

    def why_failed(self) -> str:
        """One line: what was wrong with the ``.pte`` (only for a failed verification)."""
        if self.error:
            return self.error
        problem = self.comparison.problem("the .pte", self.against)
        if problem:
            return problem
        why = (
            f"max abs diff {self.max_abs_diff:.3g} vs {self.against} > tolerance "
            f"{self.tolerance:.3g}"
        )
        return why + (f"; {self.rounding.why_not()}" if self.rounding else "")

    def summary(self) -> str:
        """The ``verify:`` line(s) of ``driver run``."""
        if self.skipped:
            return f"verify: skipped, {self.skipped}"
        status = "ok" if self.ok else "FAILED"
        if self.error:
            return f"verify: {self.error}: {status}"
        problem = self.comparison.problem("the .pte", self.against)
        line = (
            f"verify: max abs diff {self.max_abs_diff:.3g} vs {self.against} over "
            f"{self.steps} step(s), tolerance {self.tolerance:.3g}"
            + (f"; {problem}" if problem else "")
            + (f"; {self.rounding.why_not()}" if self.rounding and not self.rounded else "")
            + f": {status}"
        )
        if self.rounded:
            assert self.rounding is not None
            line += f"\nverify: out of tolerance, but {self.rounding.explains()}"
        if self.fp32 is not None:
            drift = self.fp32.problem("the .pte", "fp32 eager")
            line += (
                f"\nverify: drift from fp32 eager (quantization error, reported only): "
                f"max abs diff {self.fp32.max_abs_diff:.3g}" + (f"; {drift}" if drift else "")
            )
        return line

    def to_json(self) -> dict:
        compared = self.skipped is None and self.error is None
        return {
            "status": self.status,
            "max_abs_diff": self.max_abs_diff if compared else None,
            "tolerance": self.tolerance,
            "steps": 0 if self.skipped else self.steps,
            "against": self.against,
            "ok": None if self.skipped else self.ok,
            "skipped": self.skipped,
            "error": self.error,
            "comparison": self.comparison.to_json() if compared else None,
            "fp32_drift": self.fp32.to_json() if self.fp32 is not None and compared else None,
            "rounding": self.rounding.to_json() if self.rounding is not None else None,
        }


def cannot_execute(data: bytes) -> str | None:
    """Why this process's runtime cannot execute the delegates of a ``.pte`` (its bytes, or
    only its ``ir.views.pte_program_part``), or None.

    Reads the delegate ids from the flatbuffer (no runtime needed) and asks each backend
    module (``pteflow.backends.<name>.BACKEND_ID``) whether the runtime here has it.
    E.g. "cannot execute CoreML here: the runtime here has no CoreMLBackend (registered:
    ...); to verify, run the .pte with ExecuTorch's runner on macOS/iOS".
    """
    from pteflow.backends.runtime import runtime_missing
    from pteflow.ir.views import pte_summary

    from .backends import backend_modules

    ids = sorted({b for m in pte_summary(data).values() for b in m.backends})
    if not ids:
        return None
    probes = {
        module.BACKEND_ID: module.runtime_unavailable_reason
        for module in backend_modules().values()
        if getattr(module, "BACKEND_ID", None)
        and getattr(module, "runtime_unavailable_reason", None)
    }
    for backend_id in ids:
        probe = probes.get(backend_id)
        why = (
            probe()
            if probe is not None
            else runtime_missing(backend_id, "run the .pte where a runtime has it")
        )
        if why:
            return f"cannot execute {backend_id.removesuffix('Backend')} here: {why}"
    return None


#: executorch/runtime/core/error.h: what the runtime's "failed with error 0x.." means
_RUNTIME_ERRORS = {
    0x01: "Internal",
    0x02: "InvalidState",
    0x10: "NotSupported",
    0x11: "NotImplemented",
    0x12: "InvalidArgument (e.g. a kernel's dtype check)",
    0x13: "InvalidType",
    0x14: "OperatorMissing (no kernel registered)",
    0x20: "NotFound",
    0x21: "MemoryAllocationFailed",
    0x22: "AccessFailed",
    0x23: "InvalidProgram",
    0x30: "DelegateInvalidCompatibility",
    0x31: "DelegateMemoryAllocationFailed",
    0x32: "DelegateInvalidHandle",
}


def _first_line(e: BaseException) -> str:
    import re

    text = (str(e).strip().splitlines() or [""])[0][:200]
    code = re.search(r"error 0x([0-9a-fA-F]+)", text)
    if code and int(code.group(1), 16) in _RUNTIME_ERRORS:
        text += f" = {_RUNTIME_ERRORS[int(code.group(1), 16)]}; the runtime's log names the op"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def verify_pte(
    path: Path,
    model: LoadedModel,
    *,
    against: str = "eager",
    fp32: Mapping[str, Any] | None = None,
    expected: Sequence[Sequence[Any]] | None = None,
    outputs: list[list[Any]] | None = None,
) -> Verification:
    """Feed ``model.steps`` to ``model.reference`` and to the .pte; compare every output.

    Skipped (``Verification.skipped`` says why) when the ``.pte`` holds delegates of a
    backend this process's runtime cannot execute (CoreML off Apple, Vulkan without a
    Vulkan runtime): that is not an error, the ``.pte`` is still written. A ``.pte``
    that fails to load or execute is a failed verification (``error`` says where).
    ``fp32``: the float eager model, when the reference is a quantized one: the
    ``.pte``'s drift from it is reported in ``Verification.fp32``. ``expected``: the
    reference's outputs per step, computed already (``model.reference`` is then not run).
    ``outputs``: a list the ``.pte``'s outputs are appended to, one list per step.

    One runtime method per method name is loaded once and kept across steps,
    so stateful programs (a KV cache) see the same history as eager.
    """
    import torch
    from torch.utils._pytree import tree_flatten

    from pteflow.ir.evaluate import compare, flat_tensors, load_runtime_program
    from pteflow.ir.views import read_pte_program_part

    n = len(model.steps)
    try:
        why = cannot_execute(read_pte_program_part(path))  # not the weights
        if why:
            return Verification(Comparison(), model.tolerance, n, against, skipped=why)
        loaded = load_runtime_program(path)  # memory-mapped, as a runner loads it
    except Exception as e:
        err = f"the .pte does not load in executorch.runtime ({_first_line(e)})"
        return Verification(Comparison(), model.tolerance, n, against, error=err)
    methods: dict = {}
    total, drift = Comparison(), Comparison()
    with torch.no_grad():
        for step, (method, inputs) in enumerate(model.steps):
            want = (
                list(expected[step])
                if expected is not None
                else flat_tensors(model.reference[method](*inputs))
            )
            try:
                where = f"loading method {method!r}"
                if method not in methods:
                    methods[method] = loaded.load_method(method)
                where = f"executing method {method!r} (step {step + 1} of {n})"
                got = flat_tensors(methods[method].execute(list(tree_flatten(inputs)[0])))
            except Exception as e:
                err = f"the .pte fails in executorch.runtime while {where} ({_first_line(e)})"
                return Verification(Comparison(), model.tolerance, n, against, error=err)
            total = total + compare(got, want)
            if outputs is not None:
                outputs.append([t.clone() for t in got])  # the runtime reuses its buffers
            if fp32 is not None:
                drift = drift + compare(got, flat_tensors(fp32[method](*inputs)))
    return Verification(
        total, model.tolerance, n, against, fp32=drift if fp32 is not None else None
    )


#: verification's default tolerance against the quantized eager model (e.g. --passes runs)
QUANTIZED_TOLERANCE = 0.05


def tolerance_for(
    tol: float | None, pipe: Any, passes: Sequence[Pass], *, no_delegate: bool
) -> float:
    """The max abs diff verification (and --track-numerics) accepts against the reference.

    ``--tol``, else the pipeline's (``no_delegate_tolerance`` for a quantized
    --no-delegate run), else 1e-4, or ``QUANTIZED_TOLERANCE`` against the quantized eager
    model of a quantized run (XNNPACK quantizes activations a little differently from
    torchao and pt2e).

    Raises:
        UserError: ``tol`` is negative, infinite or NaN.
    """
    from pteflow.ir import facts
    from pteflow.ir.errors import UserError

    if tol is not None:
        if not 0 <= tol < float("inf"):
            raise UserError(f"--tol must be a finite number >= 0, got {tol}")
        return float(tol)
    quantized = any(p.contract.provides & facts.QUANTIZATION for p in passes)
    if quantized and no_delegate:
        return pipe.no_delegate_tolerance if pipe is not None else 1e-5
    if pipe is not None and pipe.tolerance is not None:
        return float(pipe.tolerance)
    return QUANTIZED_TOLERANCE if quantized else 1e-4


def verify_run(
    pte: Path,
    model: LoadedModel,
    quantized: QuantizedReference | None,
    *,
    checks: Any,
    registry: Any,
    cache: Any,
) -> Verification:
    """Verify a run's ``.pte``: against eager, or against the quantized eager model
    (rebuilt if the cache skipped it) with the fp32 drift reported beside it; a
    quantized ``.pte`` out of tolerance is checked against the reference's rounding
    variants (``driver.rounding``)."""
    if quantized is None:
        return verify_pte(pte, model)
    quantized.rebuild(model, verify=checks, registry=registry, cache=cache)
    assert quantized.outputs is not None
    got: list[list[Any]] = []
    verification = verify_pte(
        pte,
        model,
        against=quantized.label,
        fp32=model.reference,
        expected=quantized.outputs,
        outputs=got,
    )
    if verification.failed and not verification.error and not verification.comparison.problem():
        # out of tolerance: is it fp32 rounding a quantized activation the other way?
        rounding = quantized.rounding_check(
            model, got, verification.tolerance, verify=checks, registry=registry, cache=cache
        )
        verification = attrs.evolve(verification, rounding=rounding)
    return verification
