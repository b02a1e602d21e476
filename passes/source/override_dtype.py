from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from pteflow.ir import Level, Program, facts

from ..base import Pass, PassContext, PassInfo, PassResult, one_of
from ..quantize.quantize_8da4w import Quantize8da4wPass
from ..quantize.quantize_embedding import QuantizeEmbeddingPass
from ..quantize.quantize_int8_weight import QuantizeInt8WeightPass
from .expand_rope_table import ExpandRopeTablePass
from .llama import copy_modules
from .quantize_kv_cache import QuantizeKvCachePass
from .replace_rms_norm_with_native import ReplaceRmsNormWithNativePass
from .replace_sdpa_with_custom_op import ReplaceSdpaWithCustomOpPass
from .replace_sdpa_with_quantized_sdpa import ReplaceSdpaWithQuantizedSdpaPass

if TYPE_CHECKING:
    import torch

DTYPES = ("fp32", "fp16", "bf16")


@attrs.frozen
class OverrideDtypePass(Pass):
    """Cast the model's floating-point parameters and buffers to the compute dtype.

    What export_llama's ``-d fp32|fp16|bf16`` does: ``model.to(dtype)`` as the
    last source transform. It runs after the quantization and the other source
    transforms, as there: "Cast to dtype_override after quantization transforms,
    so non-quantized components use the desired computation dtype" (weights are
    quantized in the checkpoint's precision, then what stayed float is cast).
    Integer tensors (int8 caches and weights) are left alone; torchao's
    quantized weights cast their scales.

    Provides: dtype.overridden; records the dtype as ``_dtype`` in the metadata.
    """

    info: ClassVar[PassInfo] = PassInfo(
        name="override-dtype",
        level_in=Level.EAGER,
        provides={facts.DTYPE_OVERRIDDEN},
        after=(
            QuantizeEmbeddingPass,
            Quantize8da4wPass,
            QuantizeInt8WeightPass,
            ReplaceSdpaWithCustomOpPass,
            QuantizeKvCachePass,
            ReplaceSdpaWithQuantizedSdpaPass,
            ReplaceRmsNormWithNativePass,
            ExpandRopeTablePass,
        ),
    )
    dtype: str = attrs.field(default="fp32", validator=one_of(*DTYPES))

    def run(self, program: Program, ctx: PassContext) -> PassResult:
        import torch

        target = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.dtype]
        metadata = {**program.metadata, "_dtype": self.dtype}
        tensors = [t for m in program.modules().values() for t in [*m.parameters(), *m.buffers()]]
        if not any(t.is_floating_point() and t.dtype != target for t in tensors):
            return PassResult(program.evolve(metadata=metadata), False)
        modules = copy_modules(program)
        cast: dict[int, Any] = {}  # keeps tied and shared tensors tied and shared
        for module in modules.values():
            for sub in module.modules():
                _cast_tensors(sub, target, cast)
        return PassResult(program.evolve(artifact=modules, metadata=metadata), True)


def _cast_tensors(module: torch.nn.Module, dtype: torch.dtype, cast: dict[int, Any]) -> None:
    """``module.to(dtype)`` for its own tensors, by replacing them, not writing into them.

    ``Module.to`` assigns ``param.data`` in place, which would also change the
    input program that shares these tensors.
    """
    import torch

    for name, p in list(module._parameters.items()):
        if p is None or not p.is_floating_point() or p.dtype == dtype:
            continue
        if id(p) not in cast:
            cast[id(p)] = torch.nn.Parameter(p.detach().to(dtype), requires_grad=p.requires_grad)
        module._parameters[name] = cast[id(p)]
    for name, b in list(module._buffers.items()):
        if b is None or not b.is_floating_point() or b.dtype == dtype:
            continue
        if id(b) not in cast:
            cast[id(b)] = b.to(dtype)
        module._buffers[name] = cast[id(b)]
