from __future__ import annotations

import pytest
import torch

from pteflow.backends.qnn.facts import KV_CACHE_SIMPLE
from pteflow.backends.qnn.qnn_replace_kv_cache_with_simple import (
    QnnReplaceKvCacheWithSimplePass,
)
from pteflow.driver.models import tiny_llama as build_tiny_llama
from pteflow.ir import Program
from pteflow.ir.errors import ModelError
from pteflow.passes import PassManager
from tests.models import mlp
from tests.passes.source._helpers import (
    assert_decode_equal,
    assert_unchanged,
    aten_ops,
    export_aten,
    run,
    snapshot,
)


@pytest.fixture
def static_llama():
    return build_tiny_llama(seed=0, enable_dynamic_shape=False)


def test_every_cache_becomes_a_simple_cache(static_llama):
    from executorch.examples.models.llama.attention import KVCache
    from executorch.examples.models.llama.source_transformation.sdpa import KVCacheSimple

    result = run([QnnReplaceKvCacheWithSimplePass()], static_llama)
    assert result.records[0].modified
    subs = list(result.program.modules()["forward"].modules())
    assert sum(isinstance(m, KVCache) for m in subs) == 0
    caches = [m for m in subs if isinstance(m, KVCacheSimple)]
    assert len(caches) == 2 and caches[0].past_k_caches.shape == (1, 128, 2, 16)
    assert KV_CACHE_SIMPLE in result.program.facts


def test_decode_outputs_equal_the_reference(static_llama):
    result = run([QnnReplaceKvCacheWithSimplePass()], static_llama)
    assert_decode_equal(result.program, static_llama)


def test_second_run_changes_nothing(static_llama):
    first = run([QnnReplaceKvCacheWithSimplePass()], static_llama)
    again = PassManager([QnnReplaceKvCacheWithSimplePass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_input_program_left_intact(static_llama):
    before = snapshot(static_llama.program)
    run([QnnReplaceKvCacheWithSimplePass()], static_llama)
    assert_unchanged(static_llama.program, before)


def test_dynamic_shapes_refused(tiny_llama):
    with pytest.raises(ModelError, match=r"dynamic shapes.*enable_dynamic_shape=False"):
        QnnReplaceKvCacheWithSimplePass().apply(tiny_llama.program)


def test_model_without_kv_cache_refused():
    from pteflow.ir import facts

    module, inputs = mlp()
    program = Program.eager(module, inputs, facts=[facts.KV_CACHE])
    with pytest.raises(ModelError, match=r"has no ExecuTorch KVCache module"):
        QnnReplaceKvCacheWithSimplePass().apply(program)


@pytest.mark.slow
def test_exported_graph_writes_the_cache_with_index_put(static_llama):
    result = run([QnnReplaceKvCacheWithSimplePass()], static_llama)
    ops = aten_ops(export_aten(result.program))
    assert ops[torch.ops.aten.index_put.default] == 4  # K and V of 2 layers
    assert KV_CACHE_SIMPLE.check(export_aten(result.program)) is None
