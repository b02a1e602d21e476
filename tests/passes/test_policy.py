"""Cache and --no-delegate policy live outside PassInfo, in pteflow.passes.policy."""

from __future__ import annotations

import attrs

from pteflow.ir import facts
from pteflow.passes.base import PassInfo
from pteflow.passes.convert.to_executorch import ToExecutorchPass
from pteflow.passes.policy import (
    Delegating,
    Uncacheable,
    delegation_of,
    not_cacheable_because,
    without_delegation,
)
from pteflow.passes.registry import load_registry


def test_pass_info_holds_scheduling_data_only():
    names = {f.name for f in attrs.fields(PassInfo)}
    assert not names & {"cacheable", "not_cacheable_because", "delegation"}
    assert names == {
        "name",
        "level_in",
        "level_out",
        "requires",
        "provides",
        "invalidates",
        "after",
        "before",
        "ordered",
        "last",
    }


def test_every_uncacheable_pass_says_why():
    registry = load_registry()
    uncacheable = {n: c for n, c in registry.items() if issubclass(c, Uncacheable)}
    assert "emit" in uncacheable
    for name, cls in uncacheable.items():
        why = not_cacheable_because(cls)
        assert why and len(why) > 20, name
    assert not_cacheable_because(registry["to-edge"]) is None


def test_every_partitioner_names_its_backend_and_no_delegate_drops_it():
    registry = load_registry()
    partitioners = {
        n: c
        for n, c in registry.items()
        if c.info.ordered and any(f.name.startswith("delegated.") for f in c.info.provides)
    }
    assert {"partition-xnnpack", "partition-vulkan", "partition-qnn"} <= set(partitioners)
    for name, cls in partitioners.items():
        assert issubclass(cls, Delegating), name
        assert f"-{delegation_of(cls)}" in name, name
    assert without_delegation(registry["partition-xnnpack"]()) is None
    assert delegation_of(registry["to-edge"]) is None
    to_edge = registry["to-edge"]()
    assert without_delegation(to_edge) is to_edge


def test_a_pass_with_its_own_no_delegate_variant_runs_that():
    variant = without_delegation(ToExecutorchPass(const_prop=True))
    assert variant == ToExecutorchPass(const_prop=False)
    assert facts.CONST_PROPAGATED not in variant.contract.provides
