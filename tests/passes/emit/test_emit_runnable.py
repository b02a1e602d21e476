"""emit with a delegate this runtime cannot execute: not loaded, said so, still written."""

from __future__ import annotations

import pytest

from pteflow.backends.vulkan.partition_vulkan import PartitionVulkanPass
from pteflow.ir import Program
from pteflow.passes import PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_executorch import ToExecutorchPass
from pteflow.passes.emit.emit import EmitPass
from tests.backends.conftest import BUILDER_EDGE

from ...models import mlp


@pytest.mark.slow
def test_a_vulkan_method_is_not_loaded_here_and_the_file_is_written(tmp_path, capsys):
    from pteflow.ir.runnable import registered_backends

    if "VulkanBackend" in registered_backends():
        pytest.skip("this runtime executes Vulkan: nothing to skip")
    module, inputs = mlp()
    out = tmp_path / "v.pte"
    passes = [
        TorchExportPass(),
        BUILDER_EDGE,
        PartitionVulkanPass(),
        ToExecutorchPass(),
        EmitPass(path=str(out)),
    ]
    PassManager(passes, verify="off").run(Program.eager(module, inputs))
    assert out.exists()
    err = capsys.readouterr().err
    assert "emit: method 'forward' not loaded here: the runtime here has no VulkanBackend" in err
