"""Pre-quantized Llama checkpoints: recognising them and building their linears.

Pre-quantized checkpoints are recognised by content, never by file name
(ExecuTorch's ``Llama2Model`` switches on ``"int8"``/``"8da4w"`` in the path,
and its ``int8`` branch imports a module that does not exist in 1.5.1): a
linear whose checkpoint entry has an int8 ``weight`` and a ``scales`` tensor
is built as ``WeightOnlyInt8Linear`` (1-D scales) or torchao's
``Int8DynActInt4WeightLinear`` (2-D scales and ``zeros``; group size from the
scales' shape, where ``Llama2Model`` assumes 256).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pteflow.ir.errors import ModelError

if TYPE_CHECKING:
    import torch


def prequantized_mode(state: Mapping[str, torch.Tensor]) -> str | None:
    """``int8`` / ``8da4w`` when the checkpoint holds quantized linears, else None."""
    import torch

    modes = set()
    for name, scales in state.items():
        if not name.endswith(".scales"):
            continue
        weight = state.get(name[: -len("scales")] + "weight")
        if weight is None or weight.dtype != torch.int8:
            continue
        modes.add("8da4w" if scales.dim() == 2 else "int8")
    return "+".join(sorted(modes)) or None


def convert_prequantized(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Swap each linear whose checkpoint entry is quantized for the matching module."""
    import torch

    for fqn, module in list(model.named_modules()):
        if not isinstance(module, torch.nn.Linear):
            continue
        weight, scales = state.get(f"{fqn}.weight"), state.get(f"{fqn}.scales")
        if weight is None or scales is None or weight.dtype != torch.int8:
            continue
        if scales.dim() == 1:
            from executorch.examples.models.llama.source_transformation.quantize import (
                WeightOnlyInt8Linear,
            )

            new: torch.nn.Module = WeightOnlyInt8Linear(
                "cpu", module.in_features, module.out_features, bias=False
            )
        elif (
            scales.dim() == 2
            and f"{fqn}.zeros" in state
            and scales.shape[1] > 0
            and module.in_features % scales.shape[1] == 0
        ):
            from torchao.quantization.linear_quant_modules import Int8DynActInt4WeightLinear

            new = Int8DynActInt4WeightLinear(
                module.in_features,
                module.out_features,
                bias=False,
                groupsize=module.in_features // scales.shape[1],
                precision=torch.float32,
                scales_precision=torch.float32,
            )
        else:
            raise ModelError(
                f"checkpoint: {fqn} has int8 weights with scales of shape "
                f"{tuple(scales.shape)}, which is neither int8 weight-only "
                "(1-D scales) nor 8da4w (2-D group scales with zeros)"
            )
        parent_name, _, child = fqn.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
