#!/usr/bin/env bash
# The one command that reproduces models/lookalike-fashion-3.{onnx,heads.json,card.md}:
#   training/run.sh [--data ../shared/data] [train.py options...]
# Makes training/.venv with the pinned packages, trains (resumable: run it again after an
# interruption and it continues from the last checkpoint in $RUN), then exports the model
# into models/ and checks it against the trained network.
# Run r3 (the default): every labelled snapshot (street-photos' training part,
# street-photos-train, the sample catalogue: 3,543), drawn so that every kind of garment is
# seen equally often; composites drawn with rare article types favoured; a margin against
# neighbouring types. About 2.5 hours on an idle 2-core machine (5 epochs); a busy one is
# several times slower (train.py --threads 1 suffers least beside other work).
# The earlier models are the older recipe:
#   r2: RUN=training/runs/r2 NAME=lookalike-fashion-2 training/run.sh --epochs 8 --snapshots 8 \
#         --snapshot-balance 0 --composite-balance -1 --neighbour-margin 0 --street-train ''
#   r1: the same with --epochs 4 and NAME=lookalike-fashion
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x training/.venv/bin/python ]; then
  python3 -m venv training/.venv
fi
training/.venv/bin/pip install -q --disable-pip-version-check -r training/requirements.txt
RUN="${RUN:-training/runs/r3}"
training/.venv/bin/python training/train.py --run "$RUN" "$@"
training/.venv/bin/python training/export.py --run "$RUN" --out models --name "${NAME:-lookalike-fashion-3}"
