"""Check a written .pte against the eager model, in ExecuTorch's runtime."""

from __future__ import annotations

from pathlib import Path

import attrs

from .models import LoadedModel


@attrs.frozen
class Verification:
    max_abs_diff: float
    tolerance: float
    steps: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def to_json(self) -> dict:
        return {
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "steps": self.steps,
            "ok": self.ok,
        }


def verify_pte(path: Path, model: LoadedModel) -> Verification:
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
    return Verification(worst, model.tolerance, len(model.steps))
