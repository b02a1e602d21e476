"""The Qualcomm SDK, as pteflow sees it: is it usable here, and never download it.

``unavailable_reason()`` says exactly what is missing (``QNN_SDK_ROOT``, or
``libQnnHtp.so`` under ``$QNN_SDK_ROOT/lib/x86_64-linux-clang``, or the wheel's QNN
adaptor). It reads the environment and the file system and loads the one library; it
imports neither torch nor ExecuTorch and touches no network.

Why the download guard exists: ExecuTorch 1.5.1's ``setup_qnn_sdk()``
(``backends/qualcomm/utils/qnn_sdk_setup.py``), when ``QNN_SDK_ROOT`` is unset on Linux
x86_64, runs ``download_qnn_sdk.install_qnn_sdk()``: it contacts softwarecenter.qualcomm.com,
downloads and unpacks the SDK and a libc++, may re-exec the interpreter under a staged
loader, and rewrites ``QNN_SDK_ROOT`` and ``LD_LIBRARY_PATH``. It is reached not only from
lowering but from building a ``QnnQuantizer`` (``get_backend_opinfo`` ->
``_load_backend_opinfo``), from ``to_edge_transform_and_lower_to_qnn``, ``capture_program``,
the QnnManager lifecycle and LPAI compile specs. Importing the ``executorch.backends.qualcomm``
modules does not trigger it (their ``__init__`` is empty on purpose). ``disable_sdk_download()``
latches upstream's own "the caller owns the SDK" state (an empty ``QNN_SDK_ROOT``, as
``setup_qnn_sdk`` documents) for the rest of the process, so none of those paths downloads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SDK_ENV = "QNN_SDK_ROOT"
HTP_LIBRARY = "libQnnHtp.so"
LIBRARY_DIR = ("lib", "x86_64-linux-clang")
ADAPTOR = "executorch.backends.qualcomm.python.PyQnnManagerAdaptor"

DEFAULT_SOC = "SM8650"  # Snapdragon 8 Gen 3: export_llama's --soc_model default


def sdk_root() -> Path | None:
    """``$QNN_SDK_ROOT`` as a path, or None when it is unset or empty."""
    root = os.environ.get(SDK_ENV)
    return Path(root) if root else None


def htp_library_path(root: Path) -> Path:
    return root.joinpath(*LIBRARY_DIR, HTP_LIBRARY)


def unavailable_reason() -> str | None:
    """Why QNN lowering cannot run here, or None. No network, no torch import."""
    import ctypes

    root = sdk_root()
    if root is None:
        return (
            f"{SDK_ENV} is not set: install the Qualcomm AI Engine Direct SDK and export "
            f"{SDK_ENV}=/path/to/sdk ({HTP_LIBRARY} is loaded from "
            f"$QNN_SDK_ROOT/{'/'.join(LIBRARY_DIR)}); pteflow never downloads it"
        )
    library = htp_library_path(root)
    if not library.is_file():
        return (
            f"{HTP_LIBRARY} not found at {library} ({SDK_ENV}={root} is not an x86_64 Linux "
            "Qualcomm AI Engine Direct SDK)"
        )
    try:
        ctypes.CDLL(str(library))
    except OSError as e:
        return (
            f"{HTP_LIBRARY} at {library} cannot be loaded ({e}); add "
            f"$QNN_SDK_ROOT/{'/'.join(LIBRARY_DIR)} to LD_LIBRARY_PATH"
        )
    from ._availability import missing_modules

    if missing_modules(ADAPTOR):
        return f"this executorch wheel has no QNN ahead-of-time adaptor ({ADAPTOR})"
    return None


def disable_sdk_download() -> None:
    """Make ExecuTorch's ``setup_qnn_sdk()`` a no-op in this process unless an SDK is set.

    With ``QNN_SDK_ROOT`` set (even to an invalid path) upstream never downloads, so there
    is nothing to do. Without it, the variable is set to empty for one call of
    ``setup_qnn_sdk()``, which records the SDK as "left to the caller" for the rest of the
    process, and is removed again. Call it before anything that may reach
    ``setup_qnn_sdk()`` (building a QnnQuantizer, lowering).
    """
    if os.environ.get(SDK_ENV) is not None:
        return
    from executorch.backends.qualcomm.utils.qnn_sdk_setup import setup_qnn_sdk

    os.environ[SDK_ENV] = ""
    try:
        setup_qnn_sdk()
    finally:
        os.environ.pop(SDK_ENV, None)


def soc_names() -> tuple[str, ...]:
    """Every SoC ExecuTorch's QNN compile specs know (``QcomChipset``), without UNKNOWN_SM."""
    from executorch.backends.qualcomm.serialization.qc_schema import QcomChipset

    return tuple(c.name for c in QcomChipset if c.name != "UNKNOWN_SM")


def check_soc(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: a SoC name ``QcomChipset`` knows (e.g. SM8650)."""
    names = soc_names()
    if value not in names:
        from ..base import option_error

        raise option_error(
            instance.info.name,
            attribute.name,
            f"{value!r} is not a Qualcomm SoC ExecuTorch knows; one of {', '.join(names)}",
        )
