from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, Program
from pteflow.ir.errors import ModelError

from ..base import Pass, PassContext, PassInfo, PassResult
from .llama import copy_modules, not_a_llama


@attrs.frozen
class ExpandRopeTablePass(Pass):
    """Materialize the RoPE cos/sin tables per head so rotary embedding needs no broadcast.

    What export_llama's ``--expand_rope_table`` does (ExecuTorch's
    ``materialze_broadcast_of_rope_freq_cis``): the [seq, head_dim/2] tables
    become [seq, n_heads, head_dim/2], which lets optimized kernels take their
    vectorized path. The values are unchanged, so outputs are equal.

    Requires nothing; provides no fact. Refused (upstream asserts) when query
    and key head counts differ (grouped-query attention: the one table must fit
    both) and for HuggingFace-style RoPE, whose tables have another layout.
    A second run finds the tables already expanded and changes nothing.
    """

    info: ClassVar[PassInfo] = PassInfo(name="expand-rope-table", level_in=Level.EAGER)

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        from executorch.examples.models.llama.llama_transformer import Transformer
        from executorch.examples.models.llama.source_transformation.rope import (
            materialze_broadcast_of_rope_freq_cis,
        )

        todo = []
        for method, root in program.modules().items():
            if not isinstance(root, Transformer):
                raise not_a_llama(self.name, f"ExecuTorch Llama Transformer as method {method!r}")
            if root.rope.freqs_cos.dim() == 3:
                continue  # already expanded
            if root.params.use_hf_rope:
                raise ModelError(
                    f"{self.name}: {method} uses HuggingFace-style RoPE (use_hf_rope), whose "
                    "tables cannot be expanded per head; drop expand-rope-table"
                )
            for i, layer in enumerate(root.layers):
                attention = getattr(layer, "attention", None)
                heads = getattr(attention, "n_local_heads", None)
                kv_heads = getattr(attention, "n_local_kv_heads", None)
                if heads != kv_heads:
                    raise ModelError(
                        f"{self.name}: {method}:layers.{i} has {heads} query heads but "
                        f"{kv_heads} key/value heads; one expanded RoPE table cannot serve "
                        "both (needs n_kv_heads == n_heads); drop expand-rope-table"
                    )
            todo.append(method)
        if not todo:
            return PassResult(program, False)
        modules = copy_modules(program)
        for method in todo:
            # assigns new tables to the (copied) Rope module the layers share
            materialze_broadcast_of_rope_freq_cis(modules[method])
        return PassResult(program.evolve(artifact=modules), True)
