from __future__ import annotations

import pytest

from pteflow.backends.vulkan.partition_vulkan import DELEGATED_VULKAN, PartitionVulkanPass
from pteflow.backends.xnnpack.facts import DELEGATED_XNNPACK
from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.ir import Program, views
from pteflow.ir.errors import OptionError
from pteflow.passes import PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.partition.arbitration import arbitration

from ...models import mlp
from ..conftest import BUILDER_EDGE


def _lower(*partition_passes):
    module, inputs = mlp()
    passes = [TorchExportPass(), BUILDER_EDGE, *partition_passes]
    return PassManager(passes, verify="each").run(Program.eager(module, inputs))


@pytest.mark.slow
def test_vulkan_first_takes_everything_xnnpack_could():
    run = _lower(PartitionVulkanPass(), PartitionXnnpackPass())
    vulkan, xnnpack = run.records[-2:]
    assert vulkan.modified and vulkan.delegated["VulkanBackend"] == vulkan.ops_before
    assert not xnnpack.modified and xnnpack.delegated == {}
    assert DELEGATED_VULKAN in run.program.facts
    assert DELEGATED_XNNPACK not in run.program.facts  # it took nothing
    assert {d.backend_id for d in views.delegation_summary(run.program)} == {"VulkanBackend"}
    arb = arbitration(run.program)
    assert arb is not None and arb.order == ("partition-vulkan", "partition-xnnpack")
    n = vulkan.delegated["VulkanBackend"]
    assert arb.counts() == {"partition-vulkan": n, "partition-xnnpack": 0, "portable": 0}
    assert {c.claimed_by for c in arb.claims} == {"partition-vulkan"}
    first = arb.claims[0]
    assert arb.claimant(first.method, first.node) == "partition-vulkan"


@pytest.mark.slow
def test_listed_order_decides_who_claims():
    run = _lower(PartitionXnnpackPass(), PartitionVulkanPass())
    arb = arbitration(run.program)
    assert arb is not None and arb.order == ("partition-xnnpack", "partition-vulkan")
    counts = arb.counts()
    assert counts["partition-xnnpack"] == run.records[-2].delegated["XnnpackBackend"] > 0
    assert counts["portable"] == 0
    backends = {"partition-xnnpack": "XnnpackBackend", "partition-vulkan": "VulkanBackend"}
    assert all(backends[c.claimed_by] == c.backend for c in arb.claims if c.claimed_by)


def test_bad_option_refused():
    with pytest.raises(OptionError, match=r"partition-vulkan\.force_fp16: must be true or false"):
        PartitionVulkanPass(force_fp16="yes")
