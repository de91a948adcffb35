#!/usr/bin/env bash
# Installs what lookalike needs beyond cargo: the ONNX Runtime shared library, taken from
# the onnxruntime wheel on PyPI into .venv (the binary finds it there; nothing is
# downloaded at build or run time). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_VERSION=1.32.0
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import onnxruntime, sys; sys.exit(onnxruntime.__version__ != '$ORT_VERSION')" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "onnxruntime==$ORT_VERSION"
fi
ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* >/dev/null
