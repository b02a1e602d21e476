"""to-edge's kept-whole partitioners are plan data: set by the planner, printed, keyed, checked."""

from __future__ import annotations

import pytest

from pteflow.backends.vulkan.partition_vulkan import PartitionVulkanPass
from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass
from pteflow.backends.xnnpack.partition_xnnpack_dq import PartitionXnnpackDqPass
from pteflow.ir import Level, Program
from pteflow.ir.errors import ConflictError
from pteflow.passes import Pass, PassManager, plan
from pteflow.passes.cache import PassCache, pass_key
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.registry import load_registry

from ..models import mlp


def _to_edge(the_plan) -> ToEdgePass:
    (p,) = [p for p in the_plan.passes if isinstance(p, ToEdgePass)]
    return p


def test_the_planner_sets_the_partition_passes_scheduled_after_to_edge_in_run_order():
    # listed out of order: the plan's order (ordered partitioners) is what counts
    vulkan = PartitionVulkanPass(force_fp16=True)
    the_plan = plan([PartitionXnnpackDqPass(), vulkan, ToEdgePass()], start_level=Level.ATEN)
    assert _to_edge(the_plan).keep_whole_for == (
        "partition-xnnpack-dq",
        "partition-vulkan{force_fp16=true}",
    )
    # what is printed reads back as the same pass
    spec = _to_edge(the_plan).spec()
    assert Pass.from_spec(spec) == _to_edge(the_plan)


def test_driver_plan_shows_the_kept_whole_partitioners():
    import pteflow

    text = pteflow.plan(pipeline="xnnpack_default").render()
    line = next(line for line in text.splitlines() if ". to-edge" in line)
    assert "keep_whole_for=partition-xnnpack-dq}" in line


def test_without_partitioners_to_edge_keeps_its_default():
    the_plan = plan([ToEdgePass()], start_level=Level.ATEN)
    assert _to_edge(the_plan).keep_whole_for is None
    assert _to_edge(the_plan).spec() == "to-edge"


def test_a_given_value_must_agree_with_the_plan():
    wrong = ToEdgePass(keep_whole_for=("partition-vulkan",))
    with pytest.raises(ConflictError, match="drop keep_whole_for"):
        plan([wrong, PartitionXnnpackPass()], start_level=Level.ATEN)
    # a prefix of a planned pipeline (bisect, a reproducer) keeps its value
    given = ToEdgePass(keep_whole_for=("partition-xnnpack-dq", "partition-xnnpack"))
    prefix = plan([given, PartitionXnnpackDqPass()], start_level=Level.ATEN)
    assert _to_edge(prefix) == given
    # names that are not partition passes to-edge can ask are refused at plan time
    from pteflow.ir.errors import UserError

    for bad in ("bogus", "partition-qnn"):
        with pytest.raises(UserError):
            plan([ToEdgePass(keep_whole_for=(bad,))], start_level=Level.ATEN)


def test_the_kept_whole_partitioners_are_part_of_to_edges_cache_key():
    keys = {
        pass_key("input", ToEdgePass(keep_whole_for=specs))
        for specs in [None, ("partition-xnnpack",), ("partition-xnnpack-dq",)]
    }
    assert len(keys) == 3


@pytest.mark.usefixtures("every_result_stored")
def test_to_edge_is_not_restored_for_a_run_with_another_partitioner(tmp_path):
    cache = PassCache(tmp_path / "cache")
    reg = load_registry()

    def run(partitioner: Pass):
        module, inputs = mlp()
        ps = [TorchExportPass(), ToEdgePass(), partitioner]
        result = PassManager(ps, registry=reg).run(Program.eager(module, inputs), cache=cache)
        return {r.name: r.cached for r in result.records}, result.program

    run(PartitionXnnpackPass())
    cached, _ = run(PartitionXnnpackPass())
    assert cached["to-edge"]  # same plan: restored
    cached, program = run(PartitionXnnpackDqPass())
    assert cached == {"export": True, "to-edge": False, "partition-xnnpack-dq": False}
    # the restored-and-rerun edge program records the partitioner it was built for
    from pteflow.passes.partition.keep_whole import CONSULTED

    assert program.metadata[CONSULTED] == ("partition-xnnpack-dq",)
