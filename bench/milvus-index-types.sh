#!/usr/bin/env bash
# Milvus index types side by side (issue 32, item 3): the catalogue indexed into one new
# collection per type with `index --milvus-index TYPE` (as a user makes one: lookalike's
# own build parameters, flush and wait), then, for each, recall@10 of every shopper
# photo's approximate search (`search --ann -k 10`, searched by Milvus with lookalike's
# search parameters) against the exact one (`search --exact -k 10`, the same rows scored
# in memory), and search latency (`bench query --ann`, and `--exact` for the peer) on the
# photos named 0*. One run, one server:
#
#   bench/milvus-index-types.sh [CATALOG_DIR] [PHOTOS_DIR]
#       (defaults: ../shared/data/fashion-product-images-small, ../shared/data/street-photos/images)
#
# TYPES (default "hnsw ivf_flat ivf_sq8") chooses the types. Uses the embedded
# standalone Milvus or MILVUS_URI and target/release/lookalike (BIN=...). Writes
# target/bench/milvus-index-types/ and prints a line per type.
set -euo pipefail
cd "$(dirname "$0")/.."
cat=${1:-../shared/data/fashion-product-images-small}
photos=${2:-../shared/data/street-photos/images}
bin=${BIN:-target/release/lookalike}
[ -x "$bin" ] || cargo build --release --locked
out=target/bench/milvus-index-types
mkdir -p "$out"
. bench/milvus-server.sh
. bench/ann-measure.sh
all=("$photos"/*.jpg)
some=("$photos"/0*.jpg)
types=(${TYPES:-hnsw ivf_flat ivf_sq8})
for t in "${types[@]}"; do
  coll="k44_${t}_$$"
  start=$SECONDS
  "$bin" index "$cat" --index "milvus://$addr/$coll" --milvus-index "$t" --json > "$out/index-$t.json"
  echo $((SECONDS - start)) > "$out/index-$t.seconds"
  measure "$t" "milvus://$addr/$coll"
done
summarise "${types[@]}"
