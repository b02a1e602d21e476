from __future__ import annotations

from typing import ClassVar

import attrs

from pteflow.ir import Level, facts
from pteflow.passes.base import PassInfo
from pteflow.passes.source.module_swap import LLAMA, LLAMA_ST, ModuleSwapPass
from pteflow.passes.source.override_dtype import OverrideDtypePass

from .facts import SDPA_FLEX


@attrs.frozen
class QnnReplaceSdpaWithFlexPass(ModuleSwapPass):
    """Compute attention as QNN's SDPAFlex: matmul, add the mask, softmax, matmul.

    What export_llama's ``--qnn -kv`` does second: ExecuTorch's
    ``replace_sdpa_with_flex_sdpa`` (SDPA -> SDPAFlex, KV heads repeated by concatenation),
    so the graph has no fused SDPA op for QNN to lower. Runs before ``override-dtype``.

    Requires: kv_cache, and mask.additive: SDPAFlex *adds* the mask to the scores, so with
    the model's boolean mask it would add 1/0 instead of masking (upstream relies on
    ``replace_causal_mask`` running in the same list).
    Provides: sdpa.flex.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="qnn-replace-sdpa-with-flex",
        level_in=Level.EAGER,
        requires={facts.KV_CACHE, facts.MASK_ADDITIVE},
        provides={SDPA_FLEX},
        before=(OverrideDtypePass,),
    )

    replaces = (f"{LLAMA}.attention:SDPA",)
    leaves = (f"{LLAMA_ST}.sdpa:SDPAFlex",)
    transform = f"{LLAMA_ST}.sdpa:replace_sdpa_with_flex_sdpa"
    missing = "ExecuTorch SDPA module"
