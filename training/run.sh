#!/usr/bin/env bash
# The one command that reproduces models/lookalike-fashion-2.{onnx,heads.json,card.md}:
#   training/run.sh [--data ../shared/data] [train.py options...]
# Makes training/.venv with the pinned packages, trains (resumable: run it again after an
# interruption and it continues from the last checkpoint in training/runs/fashion), then
# exports the model into models/ and checks it against the trained network.
# About 2 hours on an idle 2-core machine (8 epochs); a busy one is several times slower.
# The first model, lookalike-fashion (run r1), was this recipe with 4 epochs:
#   RUN=training/runs/r1 NAME=lookalike-fashion training/run.sh --epochs 4
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x training/.venv/bin/python ]; then
  python3 -m venv training/.venv
fi
training/.venv/bin/pip install -q --disable-pip-version-check -r training/requirements.txt
RUN="${RUN:-training/runs/fashion}"
training/.venv/bin/python training/train.py --run "$RUN" "$@"
training/.venv/bin/python training/export.py --run "$RUN" --out models --name "${NAME:-lookalike-fashion-2}"
