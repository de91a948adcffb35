#!/usr/bin/env bash
# Installs the real servers the tests start themselves (nothing is mocked): an
# S3-compatible object store (moto's server, PyPI `moto[server]`) and Milvus (PyPI
# `milvus`, the embedded standalone server; scripts/milvus-server.py starts it) into
# .venv, beside the ONNX Runtime of scripts/setup.sh. Idempotent; scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
MOTO_VERSION=5.1.22
MILVUS_VERSION=2.3.5
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
  || [ ! -x .venv/bin/moto_server ]; then
  .venv/bin/pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
.venv/bin/moto_server --help >/dev/null
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('milvus') != '$MILVUS_VERSION')" 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "milvus==$MILVUS_VERSION"
fi
