#!/usr/bin/env bash
# The one command that reproduces models/lookalike-fashion-4.{onnx,heads.json,card.md}:
#   training/run.sh [--data ../shared/data] [train.py options...]
# Makes training/.venv with the pinned packages, trains (resumable: run it again after an
# interruption and it continues from the last checkpoint of the run it was in), then
# exports the model and checks it against the trained network.
# Run r4 (the default): a fine-tune of the shipped lookalike-fashion-3 (models/, started from
# its exported weights: training/warm.py) for 3 epochs at lower learning rates, 40 % of its
# composites cluttered with another garment at the frame's edge (--clutter 0.4); exported
# into $RUN as lookalike-fashion-r4, then averaged weight by weight with lookalike-fashion-3
# (training/soup.py): that average is lookalike-fashion-4. About 65 minutes on an idle
# 2-core machine.
#   r5: RECIPE=r5 training/run.sh   (measured, not shipped: BENCHMARKS.md, "r5: hierarchical
#       heads, and three in the soup"): r4 as above ($RUN4, default training/runs/r4), then
#       r5, the same fine-tune with hierarchical heads (--hierarchy 0.3) and seed 11 ($RUN,
#       default training/runs/r5), each exported into its run folder, and the three (r3, r4,
#       r5) averaged in equal shares into $OUT/lookalike-fashion-r345 (default $RUN).
# The earlier models are the older recipes (train.py's defaults are r3's):
#   r3: RECIPE=r3 training/run.sh   (from ImageNet: every labelled snapshot, drawn so that
#       every kind of garment is seen equally often; composites drawn with rare article
#       types favoured; a margin against neighbouring types; ~2.5 hours, 5 epochs)
#   r2: RECIPE=r3 RUN=training/runs/r2 NAME=lookalike-fashion-2 training/run.sh --epochs 8 --snapshots 8 \
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
  RECIPE=custom
else
  RECIPE="${RECIPE:-r4}"
  case "$RECIPE" in
    r5) RUN="${run:-${RUN:-training/runs/r5}}"; NAME="${name:-${NAME:-lookalike-fashion-r345}}" ;;
    r4) RUN="${run:-${RUN:-training/runs/r4}}"; NAME="${name:-${NAME:-lookalike-fashion-4}}" ;;
    r3) RUN="${run:-${RUN:-training/runs/r3}}"; NAME="${name:-${NAME:-lookalike-fashion-3}}" ;;
    *) echo "run.sh: RECIPE=$RECIPE is not r5, r4 or r3" >&2; exit 2 ;;
  esac
  OUT="${out:-models}"
  if [ "$RECIPE" = r5 ]; then OUT="${out:-$RUN}"; fi
fi
fine_tune=(--init models/lookalike-fashion-3.onnx --clutter 0.4 --epochs 3 --lr 4e-4 --backbone-lr 2e-4)
train() { training/.venv/bin/python training/train.py "$@" ${args[@]+"${args[@]}"}; }
case "$RECIPE" in
  r5)
    RUN4="${RUN4:-training/runs/r4}"
    train --run "$RUN4" "${fine_tune[@]}"
    training/.venv/bin/python training/export.py --run "$RUN4" --out "$RUN4" --name lookalike-fashion-r4
    train --run "$RUN" "${fine_tune[@]}" --hierarchy 0.3 --seed 11
    training/.venv/bin/python training/export.py --run "$RUN" --out "$RUN" --name lookalike-fashion-r5
    training/.venv/bin/python training/soup.py --a models/lookalike-fashion-3 \
      --b "$RUN4/lookalike-fashion-r4" --b "$RUN/lookalike-fashion-r5" --run "$RUN4" --run "$RUN" \
      --out "$OUT" --name "$NAME"
    ;;
  r4)
    train --run "$RUN" "${fine_tune[@]}"
    training/.venv/bin/python training/export.py --run "$RUN" --out "$RUN" --name lookalike-fashion-r4
    training/.venv/bin/python training/soup.py --a models/lookalike-fashion-3 --b "$RUN/lookalike-fashion-r4" \
      --run "$RUN" --out "$OUT" --name "$NAME"
    ;;
  *)
    train --run "$RUN"
    training/.venv/bin/python training/export.py --run "$RUN" --out "$OUT" --name "$NAME"
    ;;
esac
