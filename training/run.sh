#!/usr/bin/env bash
# The one command that reproduces models/lookalike-fashion.{onnx,heads.json}:
#   training/run.sh [--data ../shared/data] [train.py options...]
# Makes training/.venv with the pinned packages, trains (resumable: run it again after an
# interruption and it continues from the last checkpoint in training/runs/fashion), then
# exports the model into models/ and checks it against the trained network.
# About 50 minutes on an idle 2-core machine; a busy one is several times slower.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x training/.venv/bin/python ]; then
  python3 -m venv training/.venv
fi
training/.venv/bin/pip install -q --disable-pip-version-check -r training/requirements.txt
RUN="${RUN:-training/runs/fashion}"
training/.venv/bin/python training/train.py --run "$RUN" "$@"
training/.venv/bin/python training/export.py --run "$RUN" --out models
