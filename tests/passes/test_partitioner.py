"""Partition passes are short declarations over one shared shape (passes/partition/partitioner)."""

from __future__ import annotations

from pteflow.ir import Level
from pteflow.passes.partition.keep_whole import PartitionerSource
from pteflow.passes.partition.partitioner import LoweringPass, partitioner_info
from pteflow.passes.policy import delegation_of
from pteflow.passes.registry import load_registry


def test_every_partition_pass_has_the_shared_contract():
    registry = load_registry()
    partitioners = {n: c for n, c in registry.items() if n.startswith("partition-")}
    assert len(partitioners) >= 6
    for name, cls in partitioners.items():
        assert cls.info == partitioner_info(name, *cls.info.provides), name
        assert (cls.info.level_in, cls.info.level_out, cls.info.ordered) == (
            Level.EDGE,
            Level.EDGE,
            True,
        )
        assert delegation_of(cls), name
    lowering = {n for n, c in partitioners.items() if issubclass(c, LoweringPass)}
    assert {"partition-xnnpack", "partition-xnnpack-dq", "partition-vulkan"} <= lowering
    assert {"partition-coreml"} <= lowering
    # to-edge asks every lowering partitioner what to keep whole, never QNN's
    for name in lowering:
        assert issubclass(registry[name], PartitionerSource), name
    assert not isinstance(registry["partition-qnn"](), PartitionerSource)
