"""Helpers for testing a pass in a few lines.

    from pteflow import testing
    from pteflow.ir import Level

    program = testing.build_program(MyModel(), (torch.randn(2, 8),), level=Level.EDGE)
    run = testing.run_pass(MyPass(), program)       # prerequisites supplied by the manager
    assert run.modified
    run.assert_op_delta({edge_op_a: -1, edge_op_b: +1})
    run.assert_outputs_unchanged()

``run_pass`` asks the manager to establish what the pass needs first: the
conversions that bring the program to the pass's input level and, for every
required fact the program lacks, a registered pass that provides it (with
default options). The pass itself then runs alone, with ``each`` checks.

``write_random_checkpoint`` writes a Llama's ``params.json`` and ``consolidated.pth``
with seeded random weights, the files ``driver run --params/--checkpoint`` and
``export_llama`` read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from pteflow.ir import Fact, Level, Program, views
from pteflow.ir.errors import UnsatisfiedError
from pteflow.ir.evaluate import run_method
from pteflow.passes import Pass, PassManager
from pteflow.passes.manager import Verify
from pteflow.passes.partition import keep_whole
from pteflow.passes.registry import load_registry


def _conversions(registry: Mapping[str, type[Pass]], start: Level, goal: Level) -> list[Pass]:
    chain, level = [], start
    while level < goal:
        step = sorted(
            (
                c
                for c in registry.values()
                if c.info.level_in == level and level < c.info.level_out <= goal
            ),
            key=lambda c: (c.info.level_out, c.info.name),
        )
        if not step:
            raise UnsatisfiedError(
                f"no registered pass converts {level.label} programs towards {goal.label}"
            )
        chain.append(step[0]())
        level = step[0].info.level_out
    return chain


def prerequisites(
    pass_: Pass, program: Program, registry: Mapping[str, type[Pass]] | None = None
) -> list[Pass]:
    """The passes (default options) that bring ``program`` to what ``pass_`` needs."""
    registry = registry if registry is not None else load_registry()
    need: list[Pass] = []
    wanted = {  # an assumed fact that holds of the program needs no provider
        f
        for f in pass_.contract.requires - program.facts
        if not (f.assumed and f.check(program) is None)
    }
    seen: set[Fact] = set()
    while wanted:
        fact = sorted(wanted, key=lambda f: f.name)[0]
        wanted.discard(fact)
        seen.add(fact)
        providers = sorted(
            (c for c in registry.values() if fact in c.info.provides), key=lambda c: c.info.name
        )
        if not providers:
            raise UnsatisfiedError(
                f"no registered pass provides {fact.name!r}, which {pass_.name} requires"
            )
        provider = providers[0]()
        need.append(provider)
        wanted |= (provider.contract.requires - program.facts) - seen
    top = max([pass_.contract.level_in, *(p.contract.level_out for p in need)])
    need += _conversions(registry, program.level, top if top > program.level else program.level)
    # the conversions the pass itself needs, if the providers did not already bring us there
    if program.level < pass_.contract.level_in and not any(
        p.contract.level_out == pass_.contract.level_in for p in need
    ):
        need += _conversions(registry, program.level, pass_.contract.level_in)
    return need


def build_program(
    module: Any,
    example_inputs: tuple[Any, ...],
    *,
    level: Level = Level.EAGER,
    dynamic_shapes: Any = None,
    metadata: Mapping[str, Any] | None = None,
    facts: Iterable[Fact] = (),
) -> Program:
    """A Program of ``module`` at ``level``, built with the default conversion passes."""
    program = Program.eager(
        module, example_inputs, dynamic_shapes=dynamic_shapes, metadata=metadata, facts=facts
    )
    if level == Level.EAGER:
        return program
    chain = _conversions(load_registry(), Level.EAGER, level)
    return PassManager(chain, verify="each").run(program).program


def outputs(
    program: Program, inputs: Sequence[Any] | None = None, method: str | None = None
) -> list[Any]:
    """The program's outputs (flat tensors) on ``inputs`` (default: its example inputs)."""
    method = method or program.method_names[0]
    args = tuple(inputs) if inputs is not None else tuple(program.example_inputs[method])
    return run_method(program, method, args)


@attrs.frozen
class PassRun:
    """One pass run alone, with what was true before and after it."""

    pass_: Pass
    before: Program
    after: Program
    modified: bool
    ops_before: Counter
    ops_after: Counter
    outputs_before: list[Any] | None
    outputs_after: list[Any] | None

    def op_delta(self) -> dict[Any, int]:
        """Per op: count after minus count before (ops whose count changed)."""
        keys = set(self.ops_before) | set(self.ops_after)
        return {
            k: self.ops_after[k] - self.ops_before[k]
            for k in keys
            if self.ops_after[k] != self.ops_before[k]
        }

    def assert_op_delta(self, expected: Mapping[Any, int]) -> None:
        """Every op in ``expected`` changed count by exactly that much."""
        got = {op: self.ops_after[op] - self.ops_before[op] for op in expected}
        assert got == dict(expected), (
            f"{self.pass_.name}: op count changes {got}, expected {dict(expected)}"
        )

    def assert_outputs_unchanged(self, *, atol: float = 1e-5, rtol: float = 1e-5) -> None:
        """The outputs after the pass equal those before (on the same inputs)."""
        import torch

        assert self.outputs_before is not None and self.outputs_after is not None, (
            "run_pass(..., evaluate=False) recorded no outputs"
        )
        assert len(self.outputs_before) == len(self.outputs_after)
        for a, b in zip(self.outputs_before, self.outputs_after, strict=True):
            torch.testing.assert_close(b, a, atol=atol, rtol=rtol)


def run_pass(
    pass_: Pass,
    program: Program,
    *,
    inputs: Sequence[Any] | None = None,
    evaluate: bool = True,
    checks: Verify = "each",
    registry: Mapping[str, type[Pass]] | None = None,
) -> PassRun:
    """Run ``pass_`` alone on ``program`` after the prerequisites the manager supplies."""
    pre = prerequisites(pass_, program, registry)
    if pre:
        # planned with the pass after them, as in a real pipeline (to-edge keeps whole the
        # ops a partition pass after it asks for): run the prerequisites as that plan has them
        pre = list(keep_whole.bind([*pre, pass_]))[:-1]
        program = PassManager(pre, verify="each", registry=registry).run(program).program
    ops_before = views.op_histogram(program)
    before_out = outputs(program, inputs) if evaluate else None
    result = PassManager([pass_], verify=checks, registry=registry).run(program)
    after = result.program
    return PassRun(
        pass_=pass_,
        before=program,
        after=after,
        modified=result.records[0].modified,
        ops_before=ops_before,
        ops_after=views.op_histogram(after),
        outputs_before=before_out,
        outputs_after=outputs(after, inputs) if evaluate else None,
    )


def write_random_checkpoint(
    directory: str | Path, *, seed: int = 0, dtype: str = "float32", **config: Any
) -> tuple[Path, Path]:
    """Write ``params.json`` and ``consolidated.pth`` with seeded random weights.

    ``config`` holds params.json keys over the tiny defaults (``dim=288, n_layers=6,
    n_heads=6, vocab_size=32000`` for a stories-15M-sized model). ``max_seq_len``
    is written only when given: export_llama fails (TypeError) on a params.json
    that has it. The weights equal ``tiny_llama(seed, **config)``'s when ``dtype``
    is float32. Returns ``(params_path, checkpoint_path)``.

    Raises:
        ModelError: a bad params key or value, or a ``dtype`` that is not a float dtype.
    """
    import json

    import torch

    from pteflow.driver.models.llama import (
        TINY_PARAMS,
        check_params,
        model_args,
        random_state_dict,
    )
    from pteflow.ir.errors import ModelError

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    params = check_params({**TINY_PARAMS, **config}, "write_random_checkpoint config")
    args = model_args(params, "write_random_checkpoint")
    state = random_state_dict(args, seed)
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        raise ModelError(
            f"write_random_checkpoint: dtype {dtype!r} is not a float dtype "
            "(e.g. float32, bfloat16, float16)"
        )
    state = {k: v.to(torch_dtype) for k, v in state.items()}
    params_path, ckpt_path = out / "params.json", out / "consolidated.pth"
    params_path.write_text(json.dumps(params, indent=2) + "\n")
    torch.save(state, ckpt_path)
    return params_path, ckpt_path
