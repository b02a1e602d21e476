"""``driver qnn-sdk``: which Qualcomm SDK pteflow sees, and an SDK root from the registry.

``driver qnn-sdk`` prints ``QNN_SDK_ROOT``, the SDK's build id (asked by a child process,
see ``backends/qnn/sdk.py``) and a one-line warning when it is not the QNN version
this ExecuTorch was built for. ``driver qnn-sdk --from-package [DIR]`` lays out DIR (default:
``qnn-sdk`` in the virtual environment) as a ``QNN_SDK_ROOT`` of the installed
``onnxruntime-qnn`` package's libraries and prints the ``export`` line to use it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXAMPLES = """examples:
  driver qnn-sdk                                # what QNN_SDK_ROOT holds, its QNN version
  driver qnn-sdk --from-package                 # $VIRTUAL_ENV/qnn-sdk from onnxruntime-qnn
  export QNN_SDK_ROOT=$VIRTUAL_ENV/qnn-sdk
  driver qnn-sdk --from-package /opt/qnn-host   # anywhere else
"""


def default_root() -> Path:
    return Path(sys.prefix) / "qnn-sdk"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "qnn-sdk",
        help="show the Qualcomm SDK pteflow sees; lay one out from onnxruntime-qnn",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Show QNN_SDK_ROOT and its QNN build id, or (--from-package) lay out a "
            "QNN_SDK_ROOT from the installed onnxruntime-qnn package's host libraries."
        ),
    )
    p.add_argument(
        "--from-package",
        nargs="?",
        const=str(default_root()),
        metavar="DIR",
        help=f"lay out DIR (default {default_root()}) from onnxruntime-qnn; idempotent",
    )
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )


def cmd_qnn_sdk(args: argparse.Namespace) -> int:
    from pteflow.backends.qnn import sdk

    if args.from_package is None:
        return _show(sdk)
    from pteflow.backends.qnn.host_package import find_package, lay_out_sdk_root

    package = find_package()
    root = Path(args.from_package).expanduser().absolute()
    changed = lay_out_sdk_root(package, root)
    print(f"{'laid out' if changed else 'up to date:'} {root} from {package.describe()}")
    build_id, why = sdk.probe_build_id(sdk.htp_library_path(root))
    if why:
        sys.stderr.write(f"driver: warning: its libQnnHtp.so does not load: {why}\n")
    else:
        print(f"QNN SDK build id: {build_id}")
        _warn(sdk.version_warning(build_id))
    print(f"export {sdk.SDK_ENV}={root}")
    return 0


def _show(sdk: Any) -> int:
    root = sdk.sdk_root()
    why = sdk.unavailable_reason()
    print(f"{sdk.SDK_ENV}: {root if root is not None else '(not set)'}")
    expected = sdk.expected_qnn_version()
    print(f"this executorch is built for QNN {expected or 'unknown'}")
    if why:
        print(f"QNN lowering unavailable: {why}")
        return 1
    build_id = sdk.sdk_build_id()
    print(f"QNN SDK build id: {build_id}")
    _warn(sdk.version_warning(build_id))
    return 0


def _warn(line: str | None) -> None:
    if line:
        sys.stderr.write(f"driver: warning: {line}\n")
