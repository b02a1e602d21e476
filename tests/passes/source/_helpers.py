"""Running a source pass on the tiny Llama and comparing KV-cache decode outputs."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from pteflow.driver.models import LoadedModel
from pteflow.ir import Level, Program
from pteflow.passes import Pass, PassManager


def run(passes: list[Pass], model: LoadedModel, *, verify: str = "each") -> Any:
    """Run ``passes`` through the manager (which checks each claimed fact at EAGER)."""
    return PassManager(passes, verify=verify).run(model.program)  # type: ignore[arg-type]


def decode(module: torch.nn.Module, model: LoadedModel) -> list[torch.Tensor]:
    """Logits of every verification step (tokens one per call, input_pos counting up)."""
    with torch.no_grad():
        return [module(*inputs) for _method, inputs in model.steps]


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((x.double() - y.double()).abs().max().item() for x, y in zip(a, b, strict=True))


def assert_decode_equal(program: Program, model: LoadedModel) -> None:
    """The transformed module's logits equal the untouched reference's at every step."""
    got = decode(program.modules()["forward"], model)
    want = decode(model.reference["forward"], model)
    assert len(got) == len(want) >= 10
    for step, (g, w) in enumerate(zip(got, want, strict=True)):
        torch.testing.assert_close(g, w, msg=lambda m, step=step: f"decode step {step}: {m}")


def class_counts(program: Program) -> Counter:
    """How many submodules of each class the eager program has (keyed by class)."""
    return Counter(type(m) for m in program.modules()["forward"].modules())


def export_aten(program: Program, *, strict: bool = False) -> Program:
    """The program exported as the export pass does (no_grad, MATH SDPA, decompositions).

    Built here rather than with the export pass so the tests check the facts'
    graph checkers on a real ATen graph independently of the ATEN invariants.
    ``strict`` is export_llama's tracer (torch.export's strict mode).
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    module = program.modules()["forward"]
    with sdpa_kernel([SDPBackend.MATH]), torch.no_grad():
        ep = torch.export.export(
            module,
            tuple(program.example_inputs["forward"]),
            dynamic_shapes=program.dynamic_shapes.get("forward"),
            strict=strict,
        ).run_decompositions({})
    return program.evolve(level=Level.ATEN, artifact={"forward": ep})


def aten_ops(program: Program) -> Counter:
    """Op counts in the ATen graph (keyed by op), counting the op an
    ``auto_functionalized`` node wraps as well as the wrapper."""
    out: Counter = Counter()
    for node in program.exported_programs()["forward"].graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        out[node.target] += 1
        if "auto_functionalized" in str(node.target):
            out[node.args[0]] += 1
    return out


def snapshot(program: Program) -> tuple[list[type], dict[str, torch.Tensor]]:
    """Submodule classes and a copy of every tensor: to show a pass left its input alone."""
    module = program.modules()["forward"]
    state = {
        n: t.detach().clone() for n, t in [*module.named_parameters(), *module.named_buffers()]
    }
    return [type(m) for m in module.modules()], state


def assert_unchanged(program: Program, before: tuple[list[type], dict[str, torch.Tensor]]) -> None:
    classes, state = snapshot(program)
    assert classes == before[0]
    assert state.keys() == before[1].keys()
    for name, value in state.items():
        assert value.dtype == before[1][name].dtype and torch.equal(value, before[1][name]), name
