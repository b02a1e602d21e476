from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.ir.errors import ModelError

from ..base import Pass, PassContext, PassInfo, PassResult, one_of, option_error
from ._eager import copy_modules, named_of_type, where


def _group_size(instance: QuantizeEmbeddingPass, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise option_error(
            instance.info.name,
            attribute.name,
            f"must be 0 (one group per row) or a positive integer, got {value!r}",
        )


@attrs.frozen
class QuantizeEmbeddingPass(Pass):
    """Quantize embedding tables to 8 or 4 bits, per group of columns.

    Requires: an EAGER model with ``nn.Embedding`` layers.
    Provides: embedding.quantized.

    What export_llama's ``--embedding-quantize BITS,GROUP`` does:
    ExecuTorch's ``EmbeddingQuantHandler`` replaces every ``nn.Embedding`` by
    a ``QuantizedGroupEmbedding`` calling ``quantized_decomposed.embedding_byte``
    (8 bits) or ``embedding_4bit`` (4 bits, two values per byte), with
    torchao's hqq_scale_only qparams. ``group_size`` 0 means one group per
    row. ExecuTorch's own XNNPACK recipe uses 4 bits, group 32 (the default).
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="quantize-embedding",
        level_in=Level.EAGER,
        provides={facts.EMBEDDING_QUANTIZED},
    )
    bitwidth: int = attrs.field(default=4, validator=one_of(8, 4))
    group_size: int = attrs.field(default=32, validator=_group_size)
    hqq: bool = True  # export_llama's --use_hqq (default on)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import contextlib
        import io

        import torch
        from executorch.examples.models.llama.source_transformation.quantize import (
            EmbeddingQuantHandler,
            QuantizedGroupEmbedding,
        )

        modules = copy_modules(program)
        found = list(named_of_type(modules, torch.nn.Embedding))
        for method, name, emb in found:
            if not name:
                raise ModelError(
                    f"quantize-embedding: the model of method {method!r} is itself "
                    "an nn.Embedding; wrap it in a module so it can be replaced"
                )
            dim = emb.embedding_dim
            if self.group_size and dim % self.group_size:
                raise ModelError(
                    f"quantize-embedding: group_size {self.group_size} does not divide "
                    f"embedding_dim {dim} of embedding {where(method, name, len(modules))}; "
                    "choose a group size that divides it, or 0 for one group per row"
                )
            if self.bitwidth == 4 and dim % 2:
                raise ModelError(
                    f"quantize-embedding: 4-bit embeddings pack two values per byte, but "
                    f"embedding {where(method, name, len(modules))} has odd embedding_dim "
                    f"{dim}; use bitwidth 8"
                )
        if not found:
            if not any(named_of_type(modules, QuantizedGroupEmbedding)):
                raise ModelError(
                    "quantize-embedding: the model has no nn.Embedding table to quantize"
                )
            return PassResult(program, False)
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # it prints per table
            for method, module in modules.items():
                modules[method] = EmbeddingQuantHandler(
                    module,
                    bitwidth=self.bitwidth,
                    group_size=self.group_size or None,
                    packed=self.bitwidth == 4,
                    quantize_with_hqq=self.hqq,
                ).quantized_model()
        ctx.log(
            f"quantized {len(found)} embedding table(s) to {self.bitwidth} bits, "
            f"group size {self.group_size or 'row'}"
        )
        return PassResult(program.evolve(artifact=modules), True)
