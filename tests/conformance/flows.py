"""pteflow's flows for ExecuTorch's backend test suite, and their upstream twins.

Each flow is a ``TestFlow`` whose Tester runs pteflow (``tester.PteflowTester``), with
the same quantizer configuration and the same partitioner as the upstream flow it is
the twin of. ``install()`` adds them to ``executorch.backends.test.suite.flow.all_flows``
(the installed package is not edited: the function is wrapped at run time, before the
suite's conftest imports it and parametrizes its ``test_runner`` fixture).
"""

from __future__ import annotations

import functools
from typing import Any

#: pteflow flow -> (upstream twin, partition passes, pt2e quantizer or None)
#: The quantizers are upstream's configs: xnnpack-dynamic is
#: get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True), xnnpack-static
#: the same with is_dynamic=False (backends/xnnpack/quantizer.py).
FLOWS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "pteflow_portable": ("portable", (), None),
    "pteflow_xnnpack": ("xnnpack", ("partition-xnnpack",), None),
    "pteflow_xnnpack_dynamic_int8_per_channel": (
        "xnnpack_dynamic_int8_per_channel",
        ("partition-xnnpack",),
        "xnnpack-dynamic",
    ),
    "pteflow_xnnpack_static_int8_per_channel": (
        "xnnpack_static_int8_per_channel",
        ("partition-xnnpack",),
        "xnnpack-static",
    ),
}

#: upstream flows with no pteflow twin here, and why
NOT_BUILT: dict[str, str] = {
    "pteflow_qnn": (
        "QNN lowering needs Qualcomm's QNN 2.37 SDK; the registry's host libraries "
        "(onnxruntime-qnn, QNN 2.51) cannot create the HTP device (socModel 0, error 14001), "
        "and upstream registers no QNN flow without QNN_SDK_ROOT"
    ),
    "pteflow_coreml": (
        "AOT only: this runtime has no CoreML backend registered, so the suite's run-and-"
        "compare cannot pass under either flow here; a lowering-only comparison is not built"
    ),
    "pteflow_vulkan": (
        "AOT only: this runtime has no Vulkan backend registered (as for coreml); not built"
    ),
    "pteflow_xnnpack_static_int8_per_tensor": (
        "pteflow's XNNPACK quantizers are per-channel (backends/xnnpack/quantizer.py)"
    ),
}


def twin(name: str) -> str:
    """The upstream flow a pteflow flow is compared with."""
    return FLOWS[name][0]


@functools.cache
def pteflow_flows() -> list[Any]:
    """The pteflow ``TestFlow`` objects."""
    from executorch.backends.test.suite.flow import TestFlow

    from .tester import PteflowQuantize, PteflowTester

    flows = []
    for name, (upstream, partition, quantizer) in FLOWS.items():
        flows.append(
            TestFlow(
                name,
                backend="portable" if upstream == "portable" else "xnnpack",
                tester_factory=functools.partial(PteflowTester, partition=partition),
                quantize=quantizer is not None,
                quantize_stage_factory=(
                    functools.partial(PteflowQuantize, quantizer) if quantizer else None
                ),
                is_delegated=bool(partition),
            )
        )
    return flows


def install() -> None:
    """Add pteflow's flows to the suite's registry (idempotent)."""
    from executorch.backends.test.suite import flow as suite_flow

    if getattr(suite_flow.all_flows, "pteflow", False):
        return
    upstream = suite_flow.all_flows

    @functools.wraps(upstream)
    def all_flows() -> dict[str, Any]:
        flows = upstream()
        flows.update({f.name: f for f in pteflow_flows()})
        return flows

    all_flows.pteflow = True  # type: ignore[attr-defined]
    suite_flow.all_flows = all_flows
