"""What `driver list backends` says about every backend here; mps_default refused early."""

from __future__ import annotations

import time

import pytest

from pteflow.backends import coreml, mps, vulkan
from pteflow.backends.coreml.coreml_replace_sdpa import CoremlReplaceSdpaPass
from pteflow.backends.coreml.partition_coreml import PartitionCoremlPass
from pteflow.backends.vulkan.partition_vulkan import PartitionVulkanPass
from pteflow.driver.backends import backend_table
from pteflow.driver.cli import main
from pteflow.ir.errors import OptionError


def test_list_backends_tells_lowering_from_executing(capsys):
    rows = dict(backend_table())
    assert rows["xnnpack"] == "available"
    assert rows["portable"] == "available"
    assert rows["qnn"].startswith("unavailable: ") and "QNN_SDK_ROOT" in rows["qnn"]
    assert rows["coreml"].startswith("lowers here; cannot execute here: ")
    assert "no CoreMLBackend" in rows["coreml"] and "macOS/iOS" in rows["coreml"]
    assert rows["vulkan"].startswith("lowers here; cannot execute here: ")
    assert "no VulkanBackend" in rows["vulkan"]
    assert rows["mps"] == (
        "unavailable: executorch 1.5.1 has no MPS backend (executorch.backends.apple.mps is "
        "missing); use coreml_default for Apple GPUs/ANE"
    )
    assert main(["list", "backends"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == sorted(rows)


def test_probes_split_lowering_and_runtime():
    assert coreml.unavailable_reason() is None
    assert vulkan.unavailable_reason() is None
    assert "CoreMLBackend" in (coreml.runtime_unavailable_reason() or "")
    assert "VulkanBackend" in (vulkan.runtime_unavailable_reason() or "")
    assert "MPS" in (mps.unavailable_reason() or "")


def test_mps_default_exits_2_before_any_work(capsys):
    t0 = time.perf_counter()
    assert main(["run", "--pipeline", "mps_default"]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert "partition-mps" in err and "has no MPS backend" in err and "coreml_default" in err
    assert len(err.strip().splitlines()) == 1


def test_vulkan_partition_passes_put_vulkan_first():
    from pteflow.backends.xnnpack.partition_xnnpack import PartitionXnnpackPass

    assert [type(p) for p in vulkan.partition_passes()] == [
        PartitionVulkanPass,
        PartitionXnnpackPass,
    ]


def test_partitioners_match_export_llama():
    from executorch.extension.llm.export.partitioner_lib import (
        get_coreml_partitioner,
        get_vulkan_partitioner,
    )

    ours, theirs = coreml.partitioner(ios=18), get_coreml_partitioner(18)
    assert type(ours) is type(theirs)
    specs = [{s.key: s.value for s in p.delegation_spec.compile_specs} for p in (ours, theirs)]
    assert specs[0] == specs[1]
    assert ours.take_over_mutable_buffer is False
    v = PartitionVulkanPass().make_partitioner()
    assert type(v) is type(get_vulkan_partitioner("fp32", True))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PartitionCoremlPass(ios=14), "14 is not an iOS deployment target"),
        (lambda: CoremlReplaceSdpaPass(ios=19), "19 is not an iOS deployment target"),
        (lambda: PartitionCoremlPass(compute_units="npu"), "'npu' is not one of"),
        (lambda: PartitionCoremlPass(quantize="c4w", ios=17), "needs ios=18"),
        (lambda: PartitionVulkanPass(force_fp16=1), "must be true or false"),
    ],
)
def test_bad_options_are_refused(make, message):
    with pytest.raises(OptionError, match=message):
        make()


def test_quantizers_are_export_llamas():
    from executorch.backends.vulkan.quantizer.vulkan_quantizer import VulkanQuantizer
    from executorch.extension.llm.export.quantizer_lib import get_coreml_quantizer

    from pteflow.ir.errors import UnknownNameError

    ours = coreml.make_quantizer("coreml_8a_c8w")
    assert type(ours) is type(get_coreml_quantizer("coreml_8a_c8w"))
    with pytest.raises(UnknownNameError, match="coreml_8w"):
        coreml.make_quantizer("coreml_8w")
    assert isinstance(vulkan.make_quantizer(), VulkanQuantizer)


def test_coreml_source_passes_follow_ios():
    from pteflow.backends.coreml.coreml_replace_kv_cache import CoremlReplaceKvCachePass

    assert coreml.source_passes(ios=17) == [
        CoremlReplaceSdpaPass(ios=17),
        CoremlReplaceKvCachePass(),
    ]
