from __future__ import annotations

from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.passes.base import PassInfo, option_error
from pteflow.passes.source.llama import count
from pteflow.passes.source.module_swap import LLAMA, LLAMA_ST, ModuleSwapPass, Site, resolve
from pteflow.passes.source.override_dtype import OverrideDtypePass

from .facts import SDPA_COREML

#: the iOS deployment targets ExecuTorch's CoreML partitioner knows (get_coreml_partitioner)
IOS_VERSIONS = (15, 16, 17, 18)


def check_ios(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """attrs validator: an iOS deployment target CoreML lowering knows (15..18)."""
    if isinstance(value, bool) or value not in IOS_VERSIONS:
        raise option_error(
            instance.info.name,  # type: ignore[attr-defined]
            attribute.name,
            f"{value!r} is not an iOS deployment target CoreML lowering knows; one of "
            f"{', '.join(map(str, IOS_VERSIONS))}",
        )


@attrs.frozen
class CoremlReplaceSdpaPass(ModuleSwapPass):
    """Write attention for CoreML: iOS 18's fused SDPA op, or explicit SDPA before iOS 18.

    What export_llama's ``--coreml -kv`` does first: with ``--coreml-ios >= 18``
    ExecuTorch's ``replace_sdpa_with_coreml_sdpa`` (SDPA -> SDPACoreML, calling the
    ``coreml::sdpa`` custom op, which to-edge keeps whole and CoreML lowers to iOS 18's
    ``scaled_dot_product_attention``); before 18 ``replace_sdpa_with_simple_sdpa``
    (SDPA -> SDPASimple: matmul, mask, softmax, matmul). Runs before ``override-dtype``,
    as export_llama casts last.

    Requires: kv_cache; before iOS 18 also mask.additive: SDPASimple *adds* the mask to the
    scores, and the Llama's causal mask is boolean, so upstream's iOS < 18 path adds 1/0
    instead of masking (logits off by ~3 on the tiny Llama); run ``qnn-replace-causal-mask``
    (an additive float mask) first. Provides: sdpa.coreml.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="coreml-replace-sdpa",
        level_in=Level.EAGER,
        requires={facts.KV_CACHE},
        provides={SDPA_COREML},
        before=(OverrideDtypePass,),
        delegation="coreml",
    )
    ios: int = attrs.field(default=18, validator=check_ios)

    @property
    def contract(self) -> PassInfo:
        if self.ios >= 18:
            return self.info
        return attrs.evolve(self.info, requires={facts.KV_CACHE, facts.MASK_ADDITIVE})

    replaces = (f"{LLAMA}.attention:SDPA",)
    missing = "ExecuTorch SDPA module"

    def done(self, program: Program) -> bool:
        want = "SDPACoreML" if self.ios >= 18 else "SDPASimple"
        return bool(count(program, resolve(f"{LLAMA_ST}.sdpa:{want}")))

    def swap(self, modules: dict[str, Any], sites: list[Site]) -> None:
        how = "coreml" if self.ios >= 18 else "simple"
        replace = resolve(f"{LLAMA_ST}.sdpa:replace_sdpa_with_{how}_sdpa")
        for module in modules.values():
            replace(module)
