from __future__ import annotations

from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, Program
from pteflow.ir.errors import ModelError

from ..base import PassInfo
from .llama import not_a_llama
from .module_swap import LLAMA, LLAMA_ST, ModuleSwapPass, Site, resolve


@attrs.frozen
class ExpandRopeTablePass(ModuleSwapPass):
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

    def sites(self, program: Program) -> list[Site]:
        """Each method's Transformer whose tables are not expanded yet."""
        transformer = resolve(f"{LLAMA}.llama_transformer:Transformer")
        found = []
        for method, root in program.modules().items():
            if not isinstance(root, transformer):
                raise not_a_llama(self.name, f"ExecuTorch Llama Transformer as method {method!r}")
            if root.rope.freqs_cos.dim() != 3:  # 3: already expanded
                found.append((method, "", root))
        return found

    def done(self, program: Program) -> bool:
        return True  # every method is a Transformer with expanded tables

    def refuse(self, program: Program, sites: list[Site]) -> None:
        for method, _, root in sites:
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

    def swap(self, modules: dict[str, Any], sites: list[Site]) -> None:
        expand = resolve(f"{LLAMA_ST}.rope:materialze_broadcast_of_rope_freq_cis")
        for method, _, _ in sites:
            # assigns new tables to the (copied) Rope module the layers share
            expand(modules[method])
