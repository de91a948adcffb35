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
all=("$photos"/*.jpg)
some=("$photos"/0*.jpg)
types=(${TYPES:-hnsw ivf_flat ivf_sq8})
for t in "${types[@]}"; do
  coll="k44_${t}_$$"
  start=$SECONDS
  "$bin" index "$cat" --index "milvus://$addr/$coll" --milvus-index "$t" --json > "$out/index-$t.json"
  echo $((SECONDS - start)) > "$out/index-$t.seconds"
  idx="milvus://$addr/$coll"
  "$bin" search --index "$idx" --json -k 10 --ann "${all[@]}" > "$out/ann-$t.jsonl"
  "$bin" search --index "$idx" --json -k 10 --exact "${all[@]}" > "$out/exact-$t.jsonl"
  "$bin" bench query --repeat 5 --ann --index "$idx" "${some[@]}" > "$out/query-$t.json"
  "$bin" bench query --repeat 5 --exact --index "$idx" "${some[@]}" > "$out/query-exact-$t.json"
done
python3 - "$out" "${types[@]}" <<'PY'
import json, sys
out = sys.argv[1]
def lines(path):
    return [json.loads(l) for l in open(path) if l.strip()]
for name in sys.argv[2:]:
    ann, exact = lines(f"{out}/ann-{name}.jsonl"), lines(f"{out}/exact-{name}.jsonl")
    found = total = missed = 0
    for a, e in zip(ann, exact):
        want = {r["id"] for r in e["results"]}
        got = {r["id"] for r in a["results"]} & want
        found += len(got); total += len(want); missed += len(got) < len(want)
    q = json.load(open(f"{out}/query-{name}.json"))
    x = json.load(open(f"{out}/query-exact-{name}.json"))
    secs = open(f"{out}/index-{name}.seconds").read().strip()
    print(f"{name:9} index {secs} s  queries {len(ann)}  recall@10 {found / total:.4f} ({missed} with a miss)  "
          f"ann search p50/p99 {q['search']['p50_ms']:.2f} / {q['search']['p99_ms']:.2f} ms  "
          f"exact (in memory) p50/p99 {x['search']['p50_ms']:.2f} / {x['search']['p99_ms']:.2f} ms")
PY
