#!/usr/bin/env bash
# Smoke run of "train on your own catalogue", one command (README):
#   training/smoke.sh [WORK_DIR]        (default /tmp/lookalike-smoke)
# Trains the real network (Lite0) for 20 small steps on the bundled sample catalogue's
# articleType, exports it with its manifest, then indexes the sample with it and searches
# one snapshot. A check that the whole path works, not a useful model: a few minutes of
# CPU. Uses $LOOKALIKE, else target/release/lookalike, else target/debug/lookalike (build
# one first: cargo build --release) and ONNX Runtime as lookalike finds it (scripts/setup.sh).
set -euo pipefail
work="${1:-/tmp/lookalike-smoke}"
case "$work" in /*) ;; *) work="$PWD/$work" ;; esac
cd "$(dirname "$0")/.."
bin="${LOOKALIKE:-}"
if [ -z "$bin" ]; then
  for b in target/release/lookalike target/debug/lookalike; do
    if [ -x "$b" ]; then bin="$b"; break; fi
  done
fi
[ -n "$bin" ] || { echo "smoke.sh: no lookalike binary: cargo build --release first (or set LOOKALIKE)" >&2; exit 2; }
# A fresh run each time (run.sh would otherwise continue the last one).
rm -rf "$work/run" "$work/model" "$work/index"
start=$(date +%s)
training/run.sh --catalog sample-catalog --metadata sample-catalog/styles.csv --label articleType \
  --steps 20 --studio 16 --composites 8 --threads 1 \
  --run "$work/run" --out "$work/model" --name smoke-model
"$bin" index sample-catalog --index "$work/index" --model "$work/model/smoke-model.toml"
"$bin" info --index "$work/index"
"$bin" search --index "$work/index" -k 5 tests/fixtures/queries/dress.jpg
echo "smoke run done in $(($(date +%s) - start)) s: model in $work/model, index in $work/index"
