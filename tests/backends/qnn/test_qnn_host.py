"""QNN with Qualcomm's real x86_64 host libraries, from the registry package onnxruntime-qnn.

``bash scripts/env.sh`` installs the package (``--no-deps``); without it these tests skip.
The libraries are QNN 2.51 while ExecuTorch 1.5.1 is built for QNN 2.37: the probe, the
build id, the layout and every pass before ``partition-qnn`` work with them; creating the
HTP device does not, and ``driver run`` must say so in one line (never a segfault).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pteflow.backends import qnn
from pteflow.backends.qnn import device, sdk
from pteflow.backends.qnn.host_package import (
    MARKER,
    HostPackage,
    installed_package,
    lay_out_sdk_root,
)
from pteflow.ir.errors import UserError

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(sys.executable).with_name("driver")
PACKAGE = installed_package()
needs_package = pytest.mark.skipif(
    PACKAGE is None,
    reason="needs onnxruntime-qnn (pip install --no-deps onnxruntime-qnn==2.7.0; "
    "bash scripts/env.sh installs it)",
)


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k != "QNN_SDK_ROOT"}
    return {**base, **extra}


def _run(argv: list[str], *, cwd: Path, timeout: float = 600, **env: str):
    return subprocess.run(
        argv, capture_output=True, text=True, cwd=cwd, env=_env(**env), timeout=timeout
    )


@pytest.fixture(scope="module")
def sdk_root(tmp_path_factory) -> Path:
    assert PACKAGE is not None
    root = tmp_path_factory.mktemp("qnn") / "sdk"
    assert lay_out_sdk_root(PACKAGE, root)
    return root


# =========================================================================== layout


def _fake_package(tmp_path: Path) -> HostPackage:
    """A directory shaped like the package (files only: the layout never loads them)."""
    lib_dir = tmp_path / "site" / "onnxruntime_qnn"
    libs_dir = tmp_path / "site" / "onnxruntime_qnn.libs"
    for d in (lib_dir, libs_dir):
        d.mkdir(parents=True)
    for name in ("libQnnHtp.so", "libHtpPrepare.so", "libQnnSystem.so"):
        (lib_dir / name).write_bytes(b"")
    (libs_dir / "libc++-0.so.1.0").write_bytes(b"")
    return HostPackage("2.7.0", "2.51.0", lib_dir, libs_dir)


def test_layout_links_every_library_and_the_libcxx_directory_beside_them(tmp_path):
    package = _fake_package(tmp_path)
    root = tmp_path / "sdk"
    assert lay_out_sdk_root(package, root) is True
    libdir = root / "lib" / "x86_64-linux-clang"
    assert sorted(p.name for p in libdir.iterdir()) == [
        "libHtpPrepare.so",
        "libQnnHtp.so",
        "libQnnSystem.so",
    ]
    assert (libdir / "libQnnHtp.so").resolve() == package.lib_dir / "libQnnHtp.so"
    # the libraries' RPATH $ORIGIN/../onnxruntime_qnn.libs, seen from lib/x86_64-linux-clang
    assert (libdir / ".." / "onnxruntime_qnn.libs").resolve() == package.libs_dir
    umask = os.umask(0o022)
    os.umask(umask)
    assert root.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700


def test_layout_is_idempotent_and_follows_a_new_package(tmp_path):
    package = _fake_package(tmp_path)
    root = tmp_path / "sdk"
    assert lay_out_sdk_root(package, root)
    stamp = (root / MARKER).stat().st_mtime_ns
    assert lay_out_sdk_root(package, root) is False  # up to date: untouched
    assert (root / MARKER).stat().st_mtime_ns == stamp
    (package.lib_dir / "libQnnIr.so").write_bytes(b"")
    assert lay_out_sdk_root(package, root) is True
    assert (root / "lib" / "x86_64-linux-clang" / "libQnnIr.so").is_symlink()
    assert sorted(p.name for p in root.parent.iterdir()) == ["sdk", "site"]  # no leftovers


def test_layout_refuses_a_directory_it_did_not_make(tmp_path):
    package = _fake_package(tmp_path)
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"is not an SDK root pteflow laid out"):
        lay_out_sdk_root(package, root)
    assert (root / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "site"]


def test_a_32_bit_library_is_refused_without_loading_it(monkeypatch, tmp_path):
    lib = tmp_path / "lib" / "x86_64-linux-clang" / "libQnnHtp.so"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"\x7fELF\x01\x01\x01" + bytes(13))
    monkeypatch.setenv("QNN_SDK_ROOT", str(tmp_path))
    why = qnn.unavailable_reason()
    assert why is not None and why.startswith(f"libQnnHtp.so at {lib} cannot be loaded")
    assert "not an x86_64" in why


def test_the_qnn_version_executorch_was_built_for_is_read_from_the_wheel():
    assert sdk.expected_qnn_version() == "2.37.0"
    assert sdk.version_warning("v2.37.0.250724") is None
    line = sdk.version_warning("v2.51.0.260929181845")
    assert line is not None and "2.51.0" in line and "2.37.0" in line and "\n" not in line


def test_native_output_is_captured_at_the_file_descriptor_level():
    with device.native_output() as log:
        os.write(1, b"[INFO] [Qnn ExecuTorch]: from fd 1\n")
        os.write(2, b"[ERROR] [Qnn ExecuTorch]:  <E> from fd 2\n")
    assert log.text.splitlines() == [
        "[INFO] [Qnn ExecuTorch]: from fd 1",
        "[ERROR] [Qnn ExecuTorch]:  <E> from fd 2",
    ]


def test_the_device_failure_names_qnns_first_error_and_its_code():
    log = (
        "[ERROR] [Qnn ExecuTorch]:  <E> Failed to set scatter gather parameters: unknown "
        "custom config socModel 0\n"
        "[ERROR] [Qnn ExecuTorch]:  <E> Failed to parse platform config: 14001\n"
        "[ERROR] [Qnn ExecuTorch]: Failed to create device_handle for Backend ID 6, error=14001\n"
    )
    line = device.failure_message("SM8650", log, RuntimeError("Failed to initialize"))
    assert line.startswith("QNN could not create the HTP device for SM8650 with the SDK at")
    assert (
        "Failed to set scatter gather parameters: unknown custom config socModel 0 "
        "(QNN error 14001)" in line
    )
    assert line.endswith("or run with --no-delegate for a portable .pte") and "\n" not in line


# =========================================================================== real libraries


def _maps_after_probe(root: Path) -> subprocess.CompletedProcess:
    code = """
        import sys
        from pteflow.backends import qnn
        assert qnn.unavailable_reason() is None, qnn.unavailable_reason()
        print(qnn.sdk_summary())
        maps = open("/proc/self/maps").read()
        print("htp-loaded" if "libQnnHtp" in maps else "htp-not-loaded")
        print("torch-imported" if "torch" in sys.modules else "no-torch")
    """
    return _run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, QNN_SDK_ROOT=str(root))


@needs_package
def test_the_probe_reads_the_build_id_without_loading_the_library_here(sdk_root):
    done = _maps_after_probe(sdk_root)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert f"QNN SDK v{PACKAGE.qnn_version}." in done.stdout  # type: ignore[union-attr]
    assert lines[-2:] == ["htp-not-loaded", "no-torch"]


@needs_package
def test_a_root_whose_libraries_miss_their_libcxx_names_it(tmp_path, monkeypatch):
    assert PACKAGE is not None
    root = tmp_path / "sdk"
    lay_out_sdk_root(PACKAGE, root)
    (root / "lib" / "onnxruntime_qnn.libs").unlink()
    monkeypatch.setenv("QNN_SDK_ROOT", str(root))
    why = qnn.unavailable_reason()
    assert why is not None and why.startswith("libQnnHtp.so at ")
    assert "libc++" in why and "cannot open shared object file" in why and "\n" not in why
    assert "libQnnHtp" not in Path("/proc/self/maps").read_text()


@needs_package
@pytest.mark.slow
def test_torchao_imports_after_the_probe(sdk_root):
    """The crash of issue 13: the probe loaded libQnnHtp.so before torch; torchao segfaulted."""
    code = """
        from pteflow.backends import qnn
        assert qnn.unavailable_reason() is None
        import torch, torchao
        print("ok")
    """
    done = _run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, QNN_SDK_ROOT=str(sdk_root))
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip().endswith("ok")


@needs_package
def test_list_backends_shows_the_build_id_and_warns_once_about_the_version(sdk_root, tmp_path):
    done = _run([str(DRIVER), "list", "backends"], cwd=tmp_path, QNN_SDK_ROOT=str(sdk_root))
    assert done.returncode == 0, done.stderr
    (row,) = [ln for ln in done.stdout.splitlines() if ln.startswith("qnn ")]
    assert "unavailable" not in row and f"QNN SDK v{PACKAGE.qnn_version}." in row  # type: ignore[union-attr]
    warnings = [ln for ln in done.stderr.splitlines() if "qnn:" in ln]
    assert len(warnings) == 1 and "is not QNN 2.37.0" in warnings[0]


@needs_package
def test_without_qnn_sdk_root_the_reason_points_at_the_installed_package(monkeypatch):
    monkeypatch.delenv("QNN_SDK_ROOT", raising=False)
    why = qnn.unavailable_reason()
    assert why is not None and why.startswith("QNN_SDK_ROOT is not set")
    assert "driver qnn-sdk --from-package" in why and "\n" not in why


@needs_package
def test_qnn_sdk_command_lays_out_a_root_that_loads(tmp_path):
    root = tmp_path / "sdk"
    first = _run([str(DRIVER), "qnn-sdk", "--from-package", str(root)], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0].startswith(f"laid out {root} from onnxruntime-qnn")
    assert f"QNN SDK build id: v{PACKAGE.qnn_version}." in first.stdout  # type: ignore[union-attr]
    assert first.stdout.splitlines()[-1] == f"export QNN_SDK_ROOT={root}"
    again = _run([str(DRIVER), "qnn-sdk", "--from-package", str(root)], cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.startswith(f"up to date: {root}")
    shown = _run([str(DRIVER), "qnn-sdk"], cwd=tmp_path, QNN_SDK_ROOT=str(root))
    assert shown.returncode == 0 and "this executorch is built for QNN 2.37.0" in shown.stdout


@needs_package
@pytest.mark.slow
def test_qnn_default_runs_to_partition_qnn_and_stops_there_in_one_line(sdk_root, tmp_path):
    """Every pass before partition-qnn runs with the real libraries loaded; creating the HTP
    device then fails (QNN 2.51 vs ExecuTorch's 2.37): exit 2, one error line, nothing written.
    """
    out = tmp_path / "q.pte"
    done = _run(
        [str(DRIVER), "run", "--pipeline", "qnn_default", "--no-cache", "-o", str(out)],
        cwd=tmp_path,
        timeout=1800,
        QNN_SDK_ROOT=str(sdk_root),
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("driver: error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert errors[0].startswith(
        "driver: error: in pass partition-qnn: QNN could not create the HTP device for SM8650"
    )
    assert "14001" in errors[0] and "QNN 2.37.0" in errors[0] and "--no-delegate" in errors[0]
    assert "Traceback" not in done.stderr and "<E>" not in done.stderr  # QNN's logs: captured
    assert not out.exists()
