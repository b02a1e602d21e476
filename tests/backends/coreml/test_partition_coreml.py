from __future__ import annotations

import pytest

from pteflow.backends.coreml.partition_coreml import DELEGATED_COREML, PartitionCoremlPass
from pteflow.backends.mps.partition_mps import PartitionMpsPass
from pteflow.ir import Program, views
from pteflow.ir.errors import OptionError, UnavailableError
from pteflow.passes import PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.partition.arbitration import arbitration

from ...models import mlp
from ..conftest import BUILDER_EDGE


@pytest.mark.slow
def test_coreml_takes_the_mlp_in_one_delegate():
    module, inputs = mlp()
    passes = [TorchExportPass(), BUILDER_EDGE, PartitionCoremlPass()]
    run = PassManager(passes, verify="each").run(Program.eager(module, inputs))
    record = run.records[-1]
    assert record.modified and record.delegated == {"CoreMLBackend": 3}
    assert [d.backend_id for d in views.delegation_summary(run.program)] == ["CoreMLBackend"]
    assert DELEGATED_COREML in run.program.facts
    arb = arbitration(run.program)
    assert arb is not None and arb.counts() == {"partition-coreml": 3, "portable": 0}


@pytest.mark.slow
def test_coreml_weight_compression_lowers():
    # export_llama's --coreml-quantize c4w: coremltools compresses the weights at lowering
    module, inputs = mlp()
    passes = [TorchExportPass(), BUILDER_EDGE]
    plain = PassManager([*passes, PartitionCoremlPass()]).run(Program.eager(module, inputs))
    module, inputs = mlp()
    c4w = PassManager([*passes, PartitionCoremlPass(quantize="c4w")]).run(
        Program.eager(module, inputs)
    )
    assert [d.backend_id for d in views.delegation_summary(c4w.program)] == ["CoreMLBackend"]

    def payload(run):
        (lowered,) = [
            getattr(gm, n.args[0].target)
            for gm in run.program.graph_modules().values()
            for n in gm.graph.nodes
            if getattr(n.target, "__name__", "") == "executorch_call_delegate"
        ]
        return lowered.processed_bytes

    assert payload(c4w) != payload(plain)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ios": 19}, "19 is not an iOS deployment target"),
        ({"compute_units": "gpu"}, "'gpu' is not one of cpu_only"),
        ({"quantize": "b4w", "ios": 16}, "b4w .4-bit weights. needs ios=18"),
    ],
)
def test_bad_options_refused(options, message):
    with pytest.raises(OptionError, match=message):
        PartitionCoremlPass(**options)


def test_mps_is_refused_before_any_work():
    manager = PassManager([TorchExportPass(), ToEdgePass(), PartitionMpsPass()])
    with pytest.raises(UnavailableError, match=r"has no MPS backend.*coreml_default"):
        manager.check_available()
