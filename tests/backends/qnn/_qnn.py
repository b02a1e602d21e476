"""The tiny Llama as QNN's flow sees it at EDGE, built once per test session.

Static shapes (QNN lowers no dynamic shapes), QNN's source transforms (simple KV cache,
additive mask, flex SDPA, linear -> 1x1 conv2d), export, pt2e with the QNN quantizer
(calibrated on the verification tokens) and to-edge with ``check_ir_validity=False``, as
export_llama's ``--qnn -kv --pt2e_quantize qnn_16a4w`` does before QNN's edge passes.
Quantization calls the pt2e helpers directly with pteflow's QNN quantizer factory.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import attrs
import torch

from pteflow.backends.qnn.qnn_convert_linear_to_conv2d import QnnConvertLinearToConv2dPass
from pteflow.backends.qnn.qnn_replace_causal_mask import QnnReplaceCausalMaskPass
from pteflow.backends.qnn.qnn_replace_kv_cache_with_simple import (
    QnnReplaceKvCacheWithSimplePass,
)
from pteflow.backends.qnn.qnn_replace_sdpa_with_flex import QnnReplaceSdpaWithFlexPass
from pteflow.backends.qnn.quantizer import make_qnn_quantizer
from pteflow.backends.qnn.split_mha_to_sha import SplitMhaToShaPass
from pteflow.driver.models import LoadedModel, tiny_llama
from pteflow.ir import Program, facts
from pteflow.passes import PassManager
from pteflow.passes.convert.export import TorchExportPass
from pteflow.passes.convert.to_edge import ToEdgePass
from pteflow.passes.quantize import pt2e


@attrs.frozen
class QnnEdge:
    """An EDGE program ready for QNN's edge passes, and its fake-quantized eager reference."""

    program: Program  # shared: copy before running passes on it (they edit in place)
    fake_quant: Any  # the converted ExportedProgram (runs as the fake-quantized model)
    model: LoadedModel

    def fresh(self) -> Program:
        return self.program.evolve(artifact=copy.deepcopy(self.program.artifact))


def source_passes(*, sha: bool = False) -> list[Any]:
    passes: list[Any] = [QnnReplaceCausalMaskPass(), QnnConvertLinearToConv2dPass()]
    if sha:
        passes.insert(0, SplitMhaToShaPass())
    else:
        passes[:0] = [QnnReplaceKvCacheWithSimplePass(), QnnReplaceSdpaWithFlexPass()]
    return passes


@functools.cache
def qnn_edge(quantizer: str = "qnn-16a4w", *, sha: bool = False) -> QnnEdge:
    model = tiny_llama(seed=0, enable_dynamic_shape=False)
    aten = PassManager([*source_passes(sha=sha), TorchExportPass()]).run(model.program).program
    quantized = {}
    for method, ep in aten.exported_programs().items():
        prepared = pt2e.prepare(ep, make_qnn_quantizer(quantizer))
        runner = pt2e.calibration_module(prepared)
        with torch.no_grad():
            for _method, inputs in model.steps:
                runner(*inputs)
        quantized[method] = pt2e.convert(prepared)
    aten = aten.evolve(artifact=quantized).with_facts(gained=[facts.QUANTIZED_PT2E])
    edge = ToEdgePass(check_ir_validity=False).apply(aten).program
    return QnnEdge(edge, quantized["forward"], model)


def run_method(ep: Any, steps: Any) -> list[torch.Tensor]:
    """Outputs of ``ep`` (ATen or edge) over ``steps``, on a private copy of its KV cache."""
    module = pt2e.calibration_module(ep)
    with torch.no_grad():
        return [module(*inputs) for _method, inputs in steps]
