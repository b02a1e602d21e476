"""The int8 weight-only linear module (imports torch: load it from inside ``run``)."""

from __future__ import annotations

import torch
from executorch.examples.models.llama.source_transformation.quantize import (
    WeightOnlyInt8Linear,
    dynamically_quantize_per_channel,
)


class WeightOnlyInt8LinearWithBias(WeightOnlyInt8Linear):
    """ExecuTorch's ``WeightOnlyInt8Linear`` plus the bias it lacks (it has no bias)."""

    def __init__(self, in_features: int, out_features: int, bias: torch.Tensor):
        super().__init__("cpu", in_features, out_features)
        self.register_buffer("bias", bias.detach().clone())

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return super().forward(input) + self.bias


def int8_linear(linear: torch.nn.Linear) -> WeightOnlyInt8Linear:
    """``linear`` as ExecuTorch's ``WeightOnlyInt8QuantHandler`` converts it.

    Per-output-channel symmetric int8 weights; the scales are stored in the
    module's bfloat16 ``scales`` buffer, as the handler's ``load_state_dict``
    leaves them.
    """
    with torch.no_grad():
        weight, scales, _ = dynamically_quantize_per_channel(
            linear.weight.float().to(dtype=linear.weight.dtype),
            -128,
            127,
            torch.int8,
            None,
            scales_dtype=linear.weight.dtype,
        )
        if linear.bias is None:
            new = WeightOnlyInt8Linear("cpu", linear.in_features, linear.out_features)
        else:
            new = WeightOnlyInt8LinearWithBias(linear.in_features, linear.out_features, linear.bias)
        new.weight.copy_(weight)
        new.scales.copy_(scales.squeeze(dim=-1))
    return new
