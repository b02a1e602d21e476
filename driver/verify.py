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
    max_abs_diff: float
    tolerance: float
    steps: int
    against: str = "eager"  # what the .pte was compared with

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def to_json(self) -> dict:
        return {
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "steps": self.steps,
            "against": self.against,
            "ok": self.ok,
        }


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

    def __init__(self) -> None:
        self.pass_name: str | None = None  # the quantization pass it was taken after
        self.reference: Mapping[str, Any] = {}

    def after(self, rank: int, pass_: Any, program_out: Program, record: Any) -> None:
        from pteflow.ir import facts

        if pass_.contract.provides & facts.QUANTIZATION:
            self.pass_name, self.reference = pass_.name, reference_from(program_out)


def verify_pte(path: Path, model: LoadedModel, *, against: str = "eager") -> Verification:
    """Feed ``model.steps`` to the eager reference and to the .pte; compare every output.

    One runtime method per method name is loaded once and kept across steps,
    so stateful programs (a KV cache) see the same history as eager.
    """
    import torch

    from pteflow.ir.evaluate import flat_tensors, load_runtime_program, max_abs_diff

    loaded = load_runtime_program(path.read_bytes())
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
