from __future__ import annotations

import math
from typing import Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts
from pteflow.passes.base import PassInfo, option_error
from pteflow.passes.source.module_swap import ModuleSwapPass, Site
from pteflow.passes.source.override_dtype import OverrideDtypePass

#: QNN's own Llama (examples/qualcomm/oss_scripts/llama/masking_utils.py) masks with -255.
QNN_MASK_VALUE = -255.0


def _negative(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value < 0:
        raise option_error(
            instance.info.name,
            attribute.name,
            f"must be a negative number (e.g. -255.0, or -inf), got {value!r}",
        )


@attrs.frozen
class QnnReplaceCausalMaskPass(ModuleSwapPass):
    """Turn the boolean causal masks into additive float masks (0 where attended).

    What export_llama's ``--qnn -kv`` does with ExecuTorch's ``replace_causal_mask``:
    every buffer called ``mask`` becomes a float mask added to the attention scores. The
    mask keeps each model's own pattern (``where(mask, 0, mask_value)``). Runs before
    ``override-dtype``. Provides: mask.additive.

    ``mask_value`` (default -255.0, the value QNN's own Llama uses): upstream writes -inf
    and relies on ``QnnQuantizer`` replacing infinities in *constant* (``get_attr``) tensors
    with the quantization range. pteflow's pt2e passes quantize the exported program's
    lifted graph, where the mask is a placeholder the quantizer does not rewrite: with
    -inf the observers see -inf and every attention score becomes NaN. With a finite value
    the float model is unchanged wherever the attended scores of a row lie within about
    ``-mask_value - 100`` of each other (exp(-155) underflows to 0 in fp32), and the
    16-bit activations of the mask keep a step of ``-mask_value / 65535``.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="qnn-replace-causal-mask",
        level_in=Level.EAGER,
        provides={facts.MASK_ADDITIVE},
        before=(OverrideDtypePass,),
    )
    mask_value: float = attrs.field(default=QNN_MASK_VALUE, validator=_negative)

    missing = "attention mask buffer"

    def sites(self, program: Program) -> list[Site]:
        """The boolean buffers called ``mask`` (with no mask buffer at all: not a Llama)."""
        import torch

        return [site for site in _masks(program) if site[2].dtype == torch.bool]

    def done(self, program: Program) -> bool:
        return bool(_masks(program))  # masks, all additive already

    def swap(self, modules: dict[str, Any], sites: list[Site]) -> None:
        import torch

        fill = -math.inf if math.isinf(self.mask_value) else float(self.mask_value)
        for method, name, _ in sites:
            owner_name, _, attr = name.rpartition(".")
            owner = modules[method].get_submodule(owner_name) if owner_name else modules[method]
            old = owner.get_buffer(attr)
            additive = torch.where(old, torch.tensor(0.0), torch.tensor(fill)).to(torch.float32)
            persistent = attr not in owner._non_persistent_buffers_set
            owner.register_buffer(attr, additive, persistent=persistent)


def _masks(program: Program) -> list[Site]:
    """(method, qualified name, tensor) of every buffer called ``mask``."""
    return [
        (method, name, buf)
        for method, root in program.modules().items()
        for name, buf in root.named_buffers()
        if name.rsplit(".", 1)[-1] == "mask"
    ]
