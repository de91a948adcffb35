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
#
# A shop's own catalogue (README, "Train on your own catalogue"):
#   training/run.sh --catalog DIR --metadata CSV --label COLUMN [--snapshots SNAPSHOTS.csv] \
#     [--run RUN_DIR] [--out OUT_DIR] [--name NAME] [train.py options...]
# trains in RUN_DIR (default training/runs/custom; run it again to continue) and writes
# NAME.onnx, NAME.heads.json, NAME.card.md and the manifest NAME.toml (NAME default
# lookalike-custom) into OUT_DIR (default RUN_DIR), for `lookalike index --model NAME.toml`.
# Paths are taken relative to the folder the command is run from.
set -euo pipefail
here="$PWD"
cd "$(dirname "$0")/.."
abs() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s' "$here/$1" ;; esac; }
args=()
catalog=""
out=""
name=""
run=""
while [ $# -gt 0 ]; do
  opt="$1"
  # --opt=value as --opt value
  if [[ "$opt" == --*=* ]]; then
    set -- "${opt%%=*}" "${opt#*=}" "${@:2}"
    opt="$1"
  fi
  case "$opt" in
    --catalog|--metadata|--snapshots|--run|--out|--name)
      [ $# -ge 2 ] || { echo "run.sh: $opt needs a value" >&2; exit 2; }
      value="$2"
      shift 2
      case "$opt" in
        --catalog) catalog="$(abs "$value")"; args+=(--catalog "$catalog") ;;
        --metadata) args+=(--metadata "$(abs "$value")") ;;
        # A number is the snapshots per step (the shipped recipe's option); else a CSV.
        --snapshots) if [[ "$value" =~ ^[0-9]+$ ]]; then args+=(--snapshots "$value"); else args+=(--snapshots "$(abs "$value")"); fi ;;
        --run) run="$(abs "$value")" ;;
        --out) out="$(abs "$value")" ;;
        --name) name="$value" ;;
      esac
      ;;
    *) args+=("$opt"); shift ;;
  esac
done
if [ ! -x training/.venv/bin/python ]; then
  python3 -m venv training/.venv
fi
training/.venv/bin/pip install -q --disable-pip-version-check -r training/requirements.txt
if [ -n "$catalog" ]; then
  RUN="${run:-${RUN:-training/runs/custom}}"
  NAME="${name:-${NAME:-lookalike-custom}}"
  OUT="${out:-$RUN}"
else
  RUN="${run:-${RUN:-training/runs/r3}}"
  NAME="${name:-${NAME:-lookalike-fashion-3}}"
  OUT="${out:-models}"
fi
training/.venv/bin/python training/train.py --run "$RUN" ${args[@]+"${args[@]}"}
training/.venv/bin/python training/export.py --run "$RUN" --out "$OUT" --name "$NAME"
