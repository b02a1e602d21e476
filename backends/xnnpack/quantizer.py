"""XNNPACK's pt2e quantizers, as export_llama's ``--pt2e_quantize xnnpack_dynamic[_qc4]``.

``pt2e-prepare{quantizer=xnnpack-...}`` builds them through ``make_pt2e_quantizer``.
"""

from __future__ import annotations

from typing import Any

#: The names ``pt2e-prepare`` finds here (``pteflow.passes.quantize.pt2e.make_quantizer``).
PT2E_QUANTIZERS = ("xnnpack-dynamic", "xnnpack-dynamic-qc4", "xnnpack-static")


def make_pt2e_quantizer(name: str) -> Any:
    """``XNNPACKQuantizer`` with export_llama's global config for ``name``.

    Raises:
        ValueError: not one of ``PT2E_QUANTIZERS`` (the pass's validator keeps this unreachable).
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    if name == "xnnpack-dynamic":
        config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    elif name == "xnnpack-dynamic-qc4":
        config = get_symmetric_quantization_config(
            is_per_channel=True, is_dynamic=True, weight_qmin=-8, weight_qmax=7
        )
    elif name == "xnnpack-static":
        config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    else:
        raise ValueError(f"unknown XNNPACK quantizer {name!r}; one of {', '.join(PT2E_QUANTIZERS)}")
    return XNNPACKQuantizer().set_global(config)
