from __future__ import annotations

import pytest

from pteflow import testing
from pteflow.ir import Level, facts
from pteflow.ir.errors import OptionError
from pteflow.passes.convert.to_executorch import ToExecutorchPass

from ...models import mlp


def test_to_executorch_serializes_and_runs_like_edge():
    # a fresh EDGE program: to_executorch plans memory in the edge graph it is given (it
    # adds alloc nodes), so the session's shared edge_mlp must not be handed to it
    module, inputs = mlp()
    edge = testing.build_program(module, inputs, level=Level.EDGE)
    run = testing.run_pass(ToExecutorchPass(), edge)
    assert run.modified and run.after.level == Level.EXECUTORCH
    assert len(run.after.artifact.buffer) > 0
    run.assert_outputs_unchanged()  # EDGE in python vs EXECUTORCH in the runtime


def test_const_prop_provides_the_fact():
    assert facts.CONST_PROPAGATED in ToExecutorchPass(const_prop=True).contract.provides
    assert facts.CONST_PROPAGATED not in ToExecutorchPass().contract.provides


def test_unknown_sym_shape_eval_is_refused():
    with pytest.raises(OptionError, match="'constraint-based'"):
        ToExecutorchPass(sym_shape_eval="hint")
