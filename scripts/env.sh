#!/usr/bin/env bash
# Set up (or reuse) the project's virtual environment in .venv.
# Idempotent: pip runs again only when pyproject.toml changed since the last
# successful install. Needs only python3.11 on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "pteflow needs Python 3.11 ($PY is $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.pteflow-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setting up .venv (torch 2.13.0 CPU, executorch 1.5.1, torchao 0.18.0; a few minutes the first time)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch first and alone, pinned: anything else could pull a multi-GB CUDA build
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  .venv/bin/python -m pip install --quiet -e '.[dev,plot,sweep,hf]'
  echo "$want" > "$stamp"
fi
# Qualcomm's QNN x86_64 host libraries (libQnnHtp.so, ...; ~250 MB) from the registry package
# onnxruntime-qnn, for `driver qnn-sdk --from-package` and tests/backends/test_qnn_host.py.
# Installed here with --no-deps rather than as a pyproject extra: the package declares
# onnxruntime, numpy, protobuf, ... which pteflow never uses, and an extra cannot say --no-deps.
# PTEFLOW_NO_QNN_HOST=1 skips it.
QNN_HOST=2.7.0
if [ "${PTEFLOW_NO_QNN_HOST:-0}" = 0 ] && ! .venv/bin/python -c \
    "import importlib.metadata as m, sys; sys.exit(m.version('onnxruntime-qnn') != '$QNN_HOST')" 2>/dev/null; then
  echo "installing onnxruntime-qnn==$QNN_HOST --no-deps (Qualcomm's QNN host libraries)" >&2
  .venv/bin/python -m pip install --quiet --no-deps "onnxruntime-qnn==$QNN_HOST"
fi
