#!/usr/bin/env sh
# Create bench/.venv with the pinned packages bench/reference.py needs. Idempotent: an
# existing venv with the right versions is left alone (re-running only verifies it).
#   bench/setup-venv.sh            # uses python3 (3.9+)
#   PYTHON=python3.11 bench/setup-venv.sh
set -eu
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
VENV=.venv
PINS="numpy==2.4.6 pillow==13.0.0 onnxruntime==1.32.0 blake3==1.0.11"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $PWD/$VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
# Fast path: everything already at the pinned versions.
if "$VENV/bin/python" - $PINS <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if all(version(n) == v for n, v in (p.split("==") for p in sys.argv[1:])) else 1)
PY
then
    echo "bench/.venv is up to date ($PINS)"
    exit 0
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check --quiet $PINS
"$VENV/bin/python" -c "import numpy, PIL, onnxruntime, blake3; print('bench/.venv ready: numpy', numpy.__version__, 'pillow', PIL.__version__, 'onnxruntime', onnxruntime.__version__)"
