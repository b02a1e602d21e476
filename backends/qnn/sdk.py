"""The Qualcomm SDK, as pteflow sees it: is it usable here, and never download it.

``unavailable_reason()`` says exactly what is missing (``QNN_SDK_ROOT``, or
``libQnnHtp.so`` under ``$QNN_SDK_ROOT/lib/x86_64-linux-clang``, or the wheel's QNN
adaptor). It reads the environment and the file system and asks a child process to load the
library; it imports neither torch nor ExecuTorch, loads no SDK library into this process
and touches no network.

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
SYSTEM_LIBRARY = "libQnnSystem.so"
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
    """Why QNN lowering cannot run here, or None. No network, no torch import.

    The HTP library is never loaded into this process here: loaded before torch, Qualcomm's
    clang/libc++ host libraries make a later ``import torchao`` segfault. It is checked as a
    file (an x86_64 ELF shared object), then loaded by a short child process that asks it
    for its build id (``probe_build_id``); ``load_htp_library`` loads it here, after torch.
    """
    root = sdk_root()
    if root is None:
        return (
            f"{SDK_ENV} is not set: install the Qualcomm AI Engine Direct SDK and export "
            f"{SDK_ENV}=/path/to/sdk ({HTP_LIBRARY} is loaded from "
            f"$QNN_SDK_ROOT/{'/'.join(LIBRARY_DIR)}); pteflow never downloads it" + _package_hint()
        )
    library = htp_library_path(root)
    if not library.is_file():
        return (
            f"{HTP_LIBRARY} not found at {library} ({SDK_ENV}={root} is not an x86_64 Linux "
            "Qualcomm AI Engine Direct SDK)"
        )
    from pteflow.passes.partition.availability import missing_modules

    if missing_modules(ADAPTOR):
        return f"this executorch wheel has no QNN ahead-of-time adaptor ({ADAPTOR})"
    problem = _elf_problem(library) or probe_build_id(library)[1]
    if problem:
        return (
            f"{HTP_LIBRARY} at {library} cannot be loaded ({problem}); {SDK_ENV} must name an "
            f"x86_64 Linux SDK whose {'/'.join(LIBRARY_DIR)} libraries find their dependencies"
        )
    return None


def _package_hint() -> str:
    from .host_package import installed_package

    package = installed_package()
    if package is None:
        return ""
    return (
        f" (onnxruntime-qnn {package.version} is installed here: `driver qnn-sdk "
        "--from-package` lays out an SDK root from its QNN libraries)"
    )


def _elf_problem(library: Path) -> str | None:
    """Why ``library`` is not an x86_64 ELF shared object, or None (reads 20 bytes)."""
    try:
        with library.open("rb") as f:
            head = f.read(20)
    except OSError as e:
        return e.strerror or str(e)
    if head[:4] != b"\x7fELF":
        return "not an ELF file"
    if head[4] != 2 or int.from_bytes(head[18:20], "little") != 62:
        return "not an x86_64 (64-bit) ELF library"
    return None


_PROBE = """
import sys
from executorch.backends.qualcomm.python.PyQnnManagerAdaptor import GetQnnSdkBuildId
print("\\npteflow-build-id=" + GetQnnSdkBuildId(sys.argv[1]), flush=True)
"""
_MARK = "pteflow-build-id="
_probed: dict[tuple[str, int, int], tuple[str | None, str | None]] = {}


def probe_build_id(library: Path) -> tuple[str | None, str | None]:
    """(build id, None) or (None, why): ``GetQnnSdkBuildId`` asked by a child process.

    The child loads the library (not this process, see ``unavailable_reason``) through
    ExecuTorch's own adaptor, which imports no torch: about half a second. Cached per file
    (path, size, mtime) for the process.
    """
    try:
        st = library.stat()
    except OSError as e:
        return None, e.strerror or str(e)
    key = (str(library), st.st_size, st.st_mtime_ns)
    if key not in _probed:
        _probed[key] = _run_probe(library)
    return _probed[key]


def _run_probe(library: Path) -> tuple[str | None, str | None]:
    import subprocess
    import sys

    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(library)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONNOUSERSITE": "1"},
        )
    except subprocess.TimeoutExpired:
        return None, "asking it for its build id took over 120 s"
    found = [ln[len(_MARK) :] for ln in done.stdout.splitlines() if ln.startswith(_MARK)]
    if done.returncode == 0 and found and found[-1].strip():
        return found[-1].strip(), None
    lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
    errors = [ln.split("]:", 1)[-1].strip() for ln in lines if ln.startswith("[ERROR]")]
    if errors:  # QNN's own reason, e.g. "... with error: libc++-x.so.1.0: cannot open ..."
        return None, errors[0].split("with error:", 1)[-1].strip()
    if done.returncode < 0:
        return None, f"loading it killed a child process with signal {-done.returncode}"
    return None, lines[-1] if lines else f"the build-id probe exited {done.returncode}"


def sdk_build_id() -> str | None:
    """The SDK's build id (e.g. ``v2.51.0.260929181845``), or None when QNN is unavailable."""
    root = sdk_root()
    if root is None or unavailable_reason() is not None:
        return None
    return probe_build_id(htp_library_path(root))[0]


def expected_qnn_version() -> str | None:
    """The QNN version this ExecuTorch wheel was built for (``2.37.0``), read from its files.

    Upstream keeps it in ``backends/qualcomm/scripts/download_qnn_sdk.py`` (``QNN_VERSION``,
    possibly from a ``qnn_config.sh`` beside it). Read as text: importing the downloader is
    what pteflow never does.
    """
    import importlib.util
    import re

    try:
        spec = importlib.util.find_spec("executorch")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or ()) if spec else ():
        scripts = Path(location, "backends", "qualcomm", "scripts")
        for name, pattern in (
            ("qnn_config.sh", r"^\s*QNN_VERSION=\"?([0-9][0-9.]*)"),
            ("download_qnn_sdk.py", r"\"QNN_VERSION\",\s*\"([0-9][0-9.]*)\""),
        ):
            try:
                text = (scripts / name).read_text()
            except OSError:
                continue
            match = re.search(pattern, text, re.MULTILINE)
            if match:
                return ".".join(match.group(1).split(".")[:3])
    return None


def _version_of(build_id: str) -> str | None:
    import re

    match = re.search(r"(\d+)\.(\d+)\.(\d+)", build_id)
    return ".".join(match.groups()) if match else None


def version_warning(build_id: str | None) -> str | None:
    """One line when the SDK's QNN version is not the one this ExecuTorch was built for."""
    expected = expected_qnn_version()
    found = _version_of(build_id) if build_id else None
    if not expected or not found or found == expected:
        return None
    return (
        f"QNN SDK {build_id} is not QNN {expected}, the version this executorch was built "
        f"for: partition-qnn will likely fail creating the HTP device; use Qualcomm's QNN "
        f"{expected} SDK for QNN lowering"
    )


def load_htp_library() -> None:
    """Load ``libQnnHtp.so`` into this process (torch first, see ``unavailable_reason``).

    ExecuTorch's QnnManager opens it by file name (``dlopen("libQnnHtp.so")``), which finds
    it only on ``LD_LIBRARY_PATH`` as the process started, or already loaded. The SDK's
    ``libQnnSystem.so`` is loaded too when present (opened the same way).
    """
    import ctypes

    import torch  # noqa: F401  (must be loaded before Qualcomm's libc++ libraries)

    root = sdk_root()
    if root is None:
        return
    mode = os.RTLD_NOW | os.RTLD_GLOBAL
    ctypes.CDLL(str(htp_library_path(root)), mode=mode)
    system = htp_library_path(root).with_name(SYSTEM_LIBRARY)  # context-binary queries
    if system.is_file():
        ctypes.CDLL(str(system), mode=mode)


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
        from pteflow.passes.base import option_error

        raise option_error(
            instance.info.name,
            attribute.name,
            f"{value!r} is not a Qualcomm SoC ExecuTorch knows; one of {', '.join(names)}",
        )
