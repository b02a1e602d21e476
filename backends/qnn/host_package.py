"""Qualcomm's x86_64 host libraries from the registry package ``onnxruntime-qnn``.

The package (``pip install --no-deps onnxruntime-qnn==2.7.0``; its declared dependencies,
onnxruntime and friends, are not needed for this) ships ``libQnnHtp.so``,
``libHtpPrepare.so``, ``libQnnSystem.so``, ... in ``onnxruntime_qnn/`` and their libc++ in
``onnxruntime_qnn.libs/`` (RPATH ``$ORIGIN:$ORIGIN/../onnxruntime_qnn.libs``).
``lay_out_sdk_root`` makes a ``QNN_SDK_ROOT`` of them: ``lib/x86_64-linux-clang/`` holds a
link to each ``.so`` and ``lib/onnxruntime_qnn.libs`` links to the libc++ directory, so the
RPATH resolves from where ExecuTorch looks. Nothing is imported or loaded here.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import attrs

from pteflow.ir.errors import UserError

from .sdk import LIBRARY_DIR

DISTRIBUTION = "onnxruntime-qnn"
PIN = "onnxruntime-qnn==2.7.0"
LIBS = "onnxruntime_qnn.libs"
MARKER = "pteflow-qnn-sdk.json"


@attrs.frozen
class HostPackage:
    version: str
    qnn_version: str | None
    lib_dir: Path  # onnxruntime_qnn/, the .so files
    libs_dir: Path  # onnxruntime_qnn.libs/, their libc++

    def libraries(self) -> list[Path]:
        return sorted(p for p in self.lib_dir.glob("lib*.so") if p.is_file())

    def describe(self) -> str:
        qnn = f" (QNN {self.qnn_version})" if self.qnn_version else ""
        return f"{DISTRIBUTION} {self.version}{qnn} at {self.lib_dir}"


def installed_package() -> HostPackage | None:
    """The installed ``onnxruntime-qnn``, found on disk without importing it; None if absent."""
    import importlib.metadata
    import importlib.util
    import re

    try:
        spec = importlib.util.find_spec("onnxruntime_qnn")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or ()) if spec else []
    if not locations:
        return None
    lib_dir = Path(locations[0])
    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    try:
        info = (lib_dir / "build_and_package_info.py").read_text()
        match = re.search(r"qnn_version\s*=\s*['\"]([^'\"]+)", info)
    except OSError:
        match = None
    return HostPackage(version, match.group(1) if match else None, lib_dir, lib_dir.parent / LIBS)


def find_package() -> HostPackage:
    """The installed package with its HTP library, or a one-line UserError saying how."""
    package = installed_package()
    if package is None:
        raise UserError(
            f"{DISTRIBUTION} is not installed in this environment: pip install --no-deps {PIN} "
            "(bash scripts/env.sh does); --no-deps because only its QNN libraries are needed"
        )
    if not (package.lib_dir / "libQnnHtp.so").is_file() or not package.libs_dir.is_dir():
        raise UserError(
            f"{package.describe()} has no x86_64 Linux libQnnHtp.so with {LIBS}/ beside it; "
            f"reinstall it: pip install --no-deps --force-reinstall {PIN}"
        )
    return package


def _plan(package: HostPackage) -> dict[str, str]:
    """What the root holds: relative path -> link target (and the marker's content)."""
    libdir = "/".join(LIBRARY_DIR)
    links = {f"{libdir}/{p.name}": str(p.resolve()) for p in package.libraries()}
    links[f"lib/{LIBS}"] = str(package.libs_dir.resolve())
    return links


def _marker(package: HostPackage, links: dict[str, str]) -> str:
    body = {"package": DISTRIBUTION, "version": package.version, "qnn": package.qnn_version}
    return json.dumps({**body, "links": links}, indent=1, sort_keys=True) + "\n"


def _matches(root: Path, marker: str) -> bool:
    try:
        if (root / MARKER).read_text() != marker:
            return False
    except OSError:
        return False
    links = json.loads(marker)["links"]
    return all(os.readlink(root / rel) == target for rel, target in links.items())


def lay_out_sdk_root(package: HostPackage, root: Path) -> bool:
    """Make ``root`` a ``QNN_SDK_ROOT`` of ``package``'s libraries; True if it changed.

    Idempotent (an up-to-date root is left alone); the layout is built in a temporary
    directory beside ``root`` and renamed into place, so ``root`` is never half made (an old
    layout is moved aside first, and back if the rename fails). An existing ``root`` is
    replaced only if pteflow made it (its ``pteflow-qnn-sdk.json`` marker) or it is empty.
    """
    links = _plan(package)
    marker = _marker(package, links)
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise UserError(f"{root} exists and is not a directory; choose another directory")
    if root.is_dir():
        if _matches(root, marker):
            return False
        if any(root.iterdir()) and not (root / MARKER).is_file():
            raise UserError(
                f"{root} exists and is not an SDK root pteflow laid out (no {MARKER}); "
                "remove it or choose another directory"
            )
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it 0700
    except OSError as e:
        msg = f"cannot create {root}: {e.strerror or e}; choose another directory"
        raise UserError(msg) from e
    try:
        for rel, target in links.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, staging / rel)
        (staging / MARKER).write_text(marker)
        old = None
        if root.is_dir():
            old = root.with_name(f".{root.name}.old-{os.getpid()}")
            root.rename(old)
        try:
            staging.rename(root)
        except OSError:
            if old is not None:
                old.rename(root)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"cannot lay out {root}: {e.strerror or e}") from e
    return True
