"""QNN's pt2e quantizer, as export_llama's ``--pt2e_quantize qnn_16a4w|qnn_8a8w|qnn_16a16w``.

``make_qnn_quantizer`` builds the same ``QnnQuantizer`` configuration as
``extension/llm/export/quantizer_lib.get_qnn_quantizer`` (per-channel conv/linear weights;
MinMax activation observers for the 16-bit modes; 16a4w adds the 16a8w Llama matmul
annotation), with two differences: the SoC is an argument (upstream always builds the
quantizer for SM8750, its class default, whatever ``--soc_model`` says; the SoC only
matters for the SDK's op-constraint checks), and ExecuTorch is kept from downloading the
SDK, which building a ``QnnQuantizer`` otherwise attempts when ``QNN_SDK_ROOT`` is unset
(see ``backends/qnn/sdk.py``). Without an SDK the quantizer skips the SDK's
constraint checks (upstream logs a warning saying so) and quantizes exactly as with one.
"""

from __future__ import annotations

from typing import Any

from .sdk import DEFAULT_SOC, disable_sdk_download

#: The quantizer names the pt2e passes accept for QNN, and export_llama's spelling.
QNN_QUANTIZERS: dict[str, str] = {
    "qnn-16a4w": "qnn_16a4w",
    "qnn-8a8w": "qnn_8a8w",
    "qnn-16a16w": "qnn_16a16w",
}
DEFAULT_QNN_QUANTIZER = "qnn-16a4w"
#: The names ``pt2e-prepare`` finds here (``pteflow.passes.quantize.pt2e.make_quantizer``).
PT2E_QUANTIZERS = tuple(QNN_QUANTIZERS)


def make_pt2e_quantizer(name: str) -> Any:
    """The quantizer ``pt2e-prepare{quantizer=NAME}`` uses (the default SoC)."""
    return make_qnn_quantizer(name)


def make_qnn_quantizer(name: str = DEFAULT_QNN_QUANTIZER, *, soc: str = DEFAULT_SOC) -> Any:
    """The ``QnnQuantizer`` export_llama builds for ``name`` (a key of ``QNN_QUANTIZERS``).

    Raises:
        ValueError: an unknown name or SoC (the passes' validators keep this unreachable).
    """
    if name not in QNN_QUANTIZERS:
        raise ValueError(f"unknown QNN quantizer {name!r}; one of {', '.join(QNN_QUANTIZERS)}")
    disable_sdk_download()
    from executorch.backends.qualcomm.quantizer.custom_annotation import (
        custom_annotate_llama_matmul_16a8w,
    )
    from executorch.backends.qualcomm.quantizer.quantizer import QnnQuantizer, QuantDtype
    from executorch.backends.qualcomm.serialization.qc_schema import QcomChipset
    from torchao.quantization.pt2e import MinMaxObserver

    quantizer = QnnQuantizer(soc_model=getattr(QcomChipset, soc))
    annotations: tuple[Any, ...] = ()
    if name == "qnn-8a8w":
        quantizer.set_default_quant_config(
            QuantDtype.use_8a8w,
            is_qat=False,
            is_conv_per_channel=True,
            is_linear_per_channel=True,
        )
    elif name == "qnn-16a16w":
        # upstream: per-channel weights are off for 16a16w "due to an error with QNN HTP 16a16w"
        quantizer.set_default_quant_config(
            QuantDtype.use_16a16w,
            is_qat=False,
            is_conv_per_channel=False,
            is_linear_per_channel=False,
            act_observer=MinMaxObserver,
        )
    else:
        quantizer.set_default_quant_config(
            QuantDtype.use_16a4w,
            is_qat=False,
            is_conv_per_channel=True,
            is_linear_per_channel=True,
            act_observer=MinMaxObserver,
        )
        annotations = (custom_annotate_llama_matmul_16a8w,)
    quantizer.add_custom_quant_annotations(annotations)
    return quantizer
