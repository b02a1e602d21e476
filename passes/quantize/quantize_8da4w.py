from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError
from pteflow.ir.facts_quant import TORCHAO_LINEARS_DELEGATED

from ..base import Pass, PassContext, PassInfo, PassResult, positive
from ._eager import copy_modules, named_of_type, where
from .quantize_embedding import QuantizeEmbeddingPass


@attrs.frozen
class Quantize8da4wPass(Pass):
    """Quantize linear weights to grouped int4 with dynamic int8 activations (8da4w).

    Requires: an EAGER model with ``nn.Linear`` layers.
    Provides: quantized.8da4w. Invalidates: torchao-linears.delegated (its linears run only
    inside an XNNPACK delegate: a partition pass must take them before convert-to-linear
    or to-executorch).

    What export_llama's ``-qmode 8da4w --group_size N`` does: torchao's
    ``quantize_`` with ``Int8DynamicActivationIntxWeightConfig(int4,
    PerGroup(N), hqq_scale_only)`` on every ``nn.Linear`` except LoRA
    adapters. export_llama silently leaves a linear whose ``in_features`` the
    group size does not divide in fp32; this pass refuses it and names the
    layer. Runs after embedding quantization, as export_llama orders them
    (its comment: "quantization_mode should be applied after
    embedding_quantize", for shared embeddings).

    The weights become a torchao tensor subclass that export flattens into
    ``torchao.dequantize_affine`` + ``aten.linear``; XNNPACK only matches that
    if to-edge keeps the linear whole (``to_edge_transform_and_lower``'s
    ``ops_to_not_decompose``), which pteflow's to-edge does when a partition
    pass follows.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="quantize-8da4w",
        level_in=Level.EAGER,
        provides={facts.QUANTIZED_8DA4W},
        invalidates={TORCHAO_LINEARS_DELEGATED},
        after=(QuantizeEmbeddingPass,),
    )
    group_size: int = attrs.field(default=32, validator=positive)
    hqq: bool = True  # export_llama's --use_hqq (default on): hqq_scale_only qparams
    # XNNPACK stores 4-bit group scales in bf16 (its node_visitor casts them); rounding
    # them here makes the quantized eager model compute what the delegate computes, so
    # verification can compare the two tightly. The .pte bytes do not change: the cast
    # of a bf16-representable fp32 scale is exact.
    bf16_scales: bool = True

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch
        from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
        from torchao.quantization.granularity import PerGroup
        from torchao.utils import TorchAOBaseTensor

        modules = copy_modules(program)
        targets, done = [], 0
        for method, name, linear in named_of_type(modules, torch.nn.Linear):
            parts = name.split(".")
            if "lora_a" in parts or "lora_b" in parts:
                continue  # export_llama keeps LoRA adapters in fp32
            if isinstance(linear.weight, TorchAOBaseTensor):
                done += 1  # already quantized
                continue
            if linear.in_features % self.group_size:
                raise ModelError(
                    f"quantize-8da4w: group_size {self.group_size} does not divide "
                    f"in_features {linear.in_features} of linear layer "
                    f"{where(method, name, len(modules))}; choose a group size that divides "
                    "the in_features of every linear layer"
                )
            targets.append(linear)
        if not targets:
            if not done:
                raise ModelError("quantize-8da4w: the model has no nn.Linear layer to quantize")
            return PassResult(program, False)
        chosen = {id(m) for m in targets}
        config = Int8DynamicActivationIntxWeightConfig(
            weight_dtype=torch.int4,  # type: ignore[attr-defined]
            weight_granularity=PerGroup(self.group_size),
            intx_choose_qparams_algorithm="hqq_scale_only" if self.hqq else "affine",
        )
        with torch.no_grad():
            for module in modules.values():
                quantize_(
                    module,
                    config,
                    filter_fn=lambda m, _fqn: (
                        id(m) in chosen and not isinstance(m.weight, TorchAOBaseTensor)
                    ),
                )
            if self.bf16_scales:
                for linear in targets:
                    scale = linear.weight.scale
                    scale.copy_(scale.to(torch.bfloat16).to(scale.dtype))
        ctx.log(f"quantized {len(targets)} linear layer(s) to 8da4w, group size {self.group_size}")
        return PassResult(program.evolve(artifact=modules), True)
