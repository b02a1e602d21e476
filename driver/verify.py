"""Check a written .pte against the eager model, in ExecuTorch's runtime."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir import Level, Program
from pteflow.passes.manager import PassObserver

from .models import LoadedModel


@attrs.frozen
class Verification:
    """The outcome of ``verify_pte``: compared (``ok`` or failed), or ``skipped`` with why."""

    max_abs_diff: float
    tolerance: float
    steps: int
    against: str = "eager"  # what the .pte was compared with
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.max_abs_diff <= self.tolerance

    @property
    def failed(self) -> bool:
        """Compared and out of tolerance (a skipped verification has not failed)."""
        return self.skipped is None and not self.ok

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else ("ok" if self.ok else "failed")

    def to_json(self) -> dict:
        return {
            "status": self.status,
            "max_abs_diff": None if self.skipped else self.max_abs_diff,
            "tolerance": self.tolerance,
            "steps": 0 if self.skipped else self.steps,
            "against": self.against,
            "ok": None if self.skipped else self.ok,
            "skipped": self.skipped,
        }


def cannot_execute(data: bytes) -> str | None:
    """Why this process's runtime cannot execute the delegates of a ``.pte``, or None.

    Reads the delegate ids from the flatbuffer (no runtime needed) and asks each backend
    module (``pteflow.backends.<name>.BACKEND_ID``) whether the runtime here has it.
    E.g. "cannot execute CoreML here: the runtime here has no CoreMLBackend (registered:
    ...); to verify, run the .pte with ExecuTorch's runner on macOS/iOS".
    """
    from pteflow.backends._runtime import runtime_missing
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


def reference_from(program: Program) -> Mapping[str, Any]:
    """Callables per method that compute ``program`` in torch, from its initial state.

    For a verification reference taken mid-pipeline (the program after quantization):
    EAGER modules are deep-copied; ATEN programs (pt2e observers or quantize ops
    included) run through ``ExportedProgram.module()`` with private copies of their
    mutable buffers (the KV cache), so later runs do not see this one's history.
    """
    import copy

    from pteflow.ir.errors import PipelineError
    from pteflow.passes.quantize._pt2e import calibration_module

    if program.level == Level.EAGER:
        return {m: copy.deepcopy(mod) for m, mod in program.modules().items()}
    if program.level == Level.ATEN:
        return {m: calibration_module(ep) for m, ep in program.exported_programs().items()}
    raise PipelineError(
        f"a verification reference must be an EAGER or ATEN program, got {program.level.label}"
    )


class QuantizedReference(PassObserver):
    """Keeps the program right after the last pass that provides a quantization fact.

    ``--no-delegate`` verifies against it: an undelegated ``.pte`` must compute what
    the fake-quantized model computes, not what the float model does.
    """

    needs_every_pass = True
    flag = "--no-delegate"

    def __init__(self) -> None:
        self.pass_name: str | None = None  # the quantization pass it was taken after
        self.reference: Mapping[str, Any] = {}

    def after(self, rank: int, pass_: Any, program_out: Program, record: Any) -> None:
        from pteflow.ir import facts

        if pass_.contract.provides & facts.QUANTIZATION:
            self.pass_name, self.reference = pass_.name, reference_from(program_out)


def verify_pte(path: Path, model: LoadedModel, *, against: str = "eager") -> Verification:
    """Feed ``model.steps`` to the eager reference and to the .pte; compare every output.

    Skipped (``Verification.skipped`` says why) when the ``.pte`` holds delegates of a
    backend this process's runtime cannot execute (CoreML off Apple, Vulkan without a
    Vulkan runtime): that is not an error, the ``.pte`` is still written.

    One runtime method per method name is loaded once and kept across steps,
    so stateful programs (a KV cache) see the same history as eager.
    """
    import torch

    from pteflow.ir.evaluate import flat_tensors, load_runtime_program, max_abs_diff

    data = path.read_bytes()
    why = cannot_execute(data)
    if why:
        return Verification(float("nan"), model.tolerance, len(model.steps), against, skipped=why)
    loaded = load_runtime_program(data)
    methods: dict = {}
    worst = 0.0
    with torch.no_grad():
        for method, inputs in model.steps:
            if method not in methods:
                methods[method] = loaded.load_method(method)
            expected = flat_tensors(model.reference[method](*inputs))
            from torch.utils._pytree import tree_flatten

            got = flat_tensors(methods[method].execute(list(tree_flatten(inputs)[0])))
            worst = max(worst, max_abs_diff(expected, got))
    return Verification(worst, model.tolerance, len(model.steps), against)
