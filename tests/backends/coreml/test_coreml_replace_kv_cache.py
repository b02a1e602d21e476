from __future__ import annotations

import pytest

from pteflow.backends.coreml.coreml_replace_kv_cache import CoremlReplaceKvCachePass
from pteflow.backends.coreml.facts import KV_CACHE_COREML
from pteflow.ir.errors import ModelError
from pteflow.passes import PassManager
from pteflow.passes.source.replace_sdpa_with_custom_op import ReplaceSdpaWithCustomOpPass
from tests.passes.source._helpers import assert_decode_equal, run


def test_every_cache_becomes_coreml(tiny_llama):
    from executorch.examples.models.llama.attention import KVCache
    from executorch.examples.models.llama.source_transformation.sdpa import KVCacheCoreML

    result = run([CoremlReplaceKvCachePass()], tiny_llama)
    assert result.records[0].modified
    subs = list(result.program.modules()["forward"].modules())
    assert sum(type(m) is KVCache for m in subs) == 0
    assert sum(isinstance(m, KVCacheCoreML) for m in subs) == 2
    assert KV_CACHE_COREML in result.program.facts


def test_decode_outputs_equal_the_reference(tiny_llama):
    result = run([CoremlReplaceKvCachePass()], tiny_llama)
    assert_decode_equal(result.program, tiny_llama)


def test_second_run_changes_nothing(tiny_llama):
    first = run([CoremlReplaceKvCachePass()], tiny_llama)
    again = PassManager([CoremlReplaceKvCachePass()], verify="each").run(first.program)
    assert not again.records[0].modified


def test_custom_kv_cache_model_refused(tiny_llama):
    custom = run([ReplaceSdpaWithCustomOpPass()], tiny_llama)
    with pytest.raises(ModelError, match=r"has no ExecuTorch KVCache module"):
        CoremlReplaceKvCachePass().apply(custom.program)
