from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError

from ..base import Pass, PassContext, PassInfo, PassResult
from ._eager import copy_modules, named_of_type, where
from .quantize_embedding import QuantizeEmbeddingPass


@attrs.frozen
class QuantizeInt8WeightPass(Pass):
    """Quantize linear weights to int8 per output channel (weight-only).

    Requires: an EAGER model with ``nn.Linear`` layers.
    Provides: quantized.int8-weight.

    What export_llama's ``-qmode int8`` does: ExecuTorch's
    ``WeightOnlyInt8QuantHandler`` replaces every ``nn.Linear`` by a
    ``WeightOnlyInt8Linear`` (int8 weight, bfloat16 scales; the forward casts
    the weight to the input dtype, runs ``linear`` and scales the result).
    That module has no bias (the handler fails on a biased linear); a biased
    linear gets the same module plus its bias. The graph has no quantize op:
    an int8 constant cast by ``_to_copy`` feeds the linear. Runs after
    embedding quantization, as export_llama orders them.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="quantize-int8-weight",
        level_in=Level.EAGER,
        provides={facts.QUANTIZED_INT8_WEIGHT},
        after=(QuantizeEmbeddingPass,),
    )

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch
        from torchao.utils import TorchAOBaseTensor

        from ._int8_linear import WeightOnlyInt8Linear, int8_linear

        modules = copy_modules(program)
        targets = []
        done = sum(1 for _ in named_of_type(modules, WeightOnlyInt8Linear))
        for method, name, linear in named_of_type(modules, torch.nn.Linear):
            if isinstance(linear.weight, TorchAOBaseTensor):
                done += 1  # quantized by another pass
                continue
            if not name:
                raise ModelError(
                    f"quantize-int8-weight: the model of method {method!r} is "
                    "itself an nn.Linear; wrap it in a module so it can be replaced"
                )
            if not linear.weight.is_floating_point():
                raise ModelError(
                    f"quantize-int8-weight: linear layer "
                    f"{where(method, name, len(modules))} has a "
                    f"{linear.weight.dtype} weight; expected a float weight"
                )
            targets.append((name, linear))
        if not targets:
            if not done:
                raise ModelError(
                    "quantize-int8-weight: the model has no nn.Linear layer to quantize"
                )
            return PassResult(program, False)
        replaced = {id(linear): int8_linear(linear) for _, linear in targets}
        for module in modules.values():
            for parent in list(module.modules()):
                for attr, child in list(parent.named_children()):
                    if id(child) in replaced:
                        setattr(parent, attr, replaced[id(child)])
        ctx.log(f"quantized {len(replaced)} linear layer(s) to int8 weight-only")
        return PassResult(program.evolve(artifact=modules), True)
