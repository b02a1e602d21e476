"""The structural hash: same structure, same hash; any graph or module edit changes it."""

from __future__ import annotations

import torch

from pteflow.ir import facts
from pteflow.ir.hashing import structural_hash

from ..fakes import ReluToSigmoidPass


def test_equal_programs_hash_equal_and_facts_do_not_count(aten_mlp):
    h = structural_hash(aten_mlp)
    assert h == structural_hash(aten_mlp)
    assert h == structural_hash(aten_mlp.with_facts(gained=[facts.QUANTIZED_PT2E]))
    assert len(h) == 64


def test_a_graph_edit_changes_the_hash(aten_mlp):
    before = structural_hash(aten_mlp)
    ReluToSigmoidPass().apply(aten_mlp)  # edits in place
    assert structural_hash(aten_mlp) != before


def test_eager_hash_sees_module_swaps_and_shapes(eager_mlp):
    before = structural_hash(eager_mlp)
    module = eager_mlp.modules()["forward"]
    module.fc1.weight.data = module.fc1.weight.data.half()
    after_dtype = structural_hash(eager_mlp)
    assert after_dtype != before
    module.fc2 = torch.nn.Linear(32, 8)  # same class and shape: same structure
    assert structural_hash(eager_mlp) == after_dtype
    module.fc2 = torch.nn.Sequential(torch.nn.Linear(32, 8))
    assert structural_hash(eager_mlp) != after_dtype
