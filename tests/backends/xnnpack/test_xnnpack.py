from __future__ import annotations

from pteflow.backends import xnnpack
from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.backends.xnnpack.partition_xnnpack_dq import PartitionXnnpackDqPass
from pteflow.driver.backends import backend_table


def test_available_here_with_the_runtime_backend_registered():
    from executorch.runtime import Runtime

    assert Runtime.get().backend_registry.is_available(xnnpack.BACKEND_ID)
    assert xnnpack.unavailable_reason() is None
    assert ("xnnpack", "available") in backend_table()


def test_partition_passes_in_export_llama_order():
    assert [type(p) for p in xnnpack.partition_passes()] == [
        PartitionXnnpackDqPass,
        PartitionXnnpackPass,
    ]
    assert xnnpack.partition_passes(extended_ops=False) == [PartitionXnnpackDqPass()]
    assert xnnpack.partition_passes(enable_bf16=True)[1] == PartitionXnnpackPass(enable_bf16=True)


def test_partitioners_match_export_llama():
    from executorch.extension.llm.export.partitioner_lib import get_xnnpack_partitioner

    ours = xnnpack.partitioners()
    theirs = [
        get_xnnpack_partitioner(dynamic_quant_only_partitioner=True),
        get_xnnpack_partitioner(dynamic_quant_only_partitioner=False),
    ]
    assert [type(p) for p in ours] == [type(p) for p in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a.target_partitioner_configs.keys() == b.target_partitioner_configs.keys()
