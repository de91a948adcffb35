#!/usr/bin/env bash
# The 44k catalogue in Milvus beside the same catalogue in a folder, in one run (issue 13):
#
#   bench/milvus-44k.sh [CATALOG_DIR]     (default: ../shared/data/fashion-product-images-small)
#
# Builds the folder index, one collection by one `index` run, and another by two `--shard`
# processes at once (then `repartition`); compares leave-one-out precision on the
# held-out split across the three (and the two collections item by item, through their
# answers), and times opening and photo queries (the street photos) on each. Uses the
# embedded standalone Milvus (scripts/test-servers.sh) or MILVUS_URI=HOST:PORT, and
# target/release/lookalike (BIN=... for another build). Writes target/bench/milvus-44k/.
set -euo pipefail
cd "$(dirname "$0")/.."
cat=${1:-../shared/data/fashion-product-images-small}
bin=${BIN:-target/release/lookalike}
[ -x "$bin" ] || cargo build --release --locked
out=target/bench/milvus-44k
mkdir -p "$out"
. bench/milvus-server.sh
one="milvus://$addr/k44_one_$$"
two="milvus://$addr/k44_two_$$"
folder="$tmp/folder"
t() { local s=$(date +%s.%N); "$@"; echo "$(date +%s.%N) - $s" | bc > "$out/last.time"; }
t "$bin" index "$cat" --index "$folder" --json > "$out/index-folder.json"; echo "index folder: $(cat "$out/last.time") s"
t "$bin" index "$cat" --index "$one" --json > "$out/index-one.json"; echo "index collection: $(cat "$out/last.time") s"
shards() {
  "$bin" index "$cat" --index "$two" --shard 0/2 --json > "$out/index-shard0.json" & local a=$!
  "$bin" index "$cat" --index "$two" --shard 1/2 --json > "$out/index-shard1.json"; wait $a
}
t shards; echo "index collection, two shards at once: $(cat "$out/last.time") s"
t "$bin" repartition --index "$two" --json > "$out/repartition-two.json"; echo "repartition: $(cat "$out/last.time") s"
for name in folder one two; do
  idx=$folder; [ $name = one ] && idx=$one; [ $name = two ] && idx=$two
  t "$bin" info --index "$idx" --json > "$out/info-$name.json"; echo "open $name: $(cat "$out/last.time") s"
  "$bin" eval --leave-one-out --holdout --json --index "$idx" > "$out/eval-$name.json"
  "$bin" bench query --index "$idx" ../shared/data/street-photos/images/0*.jpg > "$out/query-$name.json"
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def load(n): return json.load(open(f"{out}/{n}.json"))
strip = lambda d: {k: v for k, v in d.items() if "second" not in k and not k.endswith("_ms")}
for n in ["folder", "one", "two"]:
    e, q, i = load(f"eval-{n}"), load(f"query-{n}"), load(f"info-{n}")
    print(n, "items", i["count"], "cells", i.get("cells"), "P@5", {l["label"]: round(l["overall"]["precision"], 4) for l in e["labels"]}, round(e["precision"], 4),
          "query p50/p99 ms", q["total"]["p50_ms"], q["total"]["p99_ms"], "search p50/p99", q["search"]["p50_ms"], q["search"]["p99_ms"])
print("eval one == two:", strip(load("eval-one")) == strip(load("eval-two")))
print("eval folder == one:", strip(load("eval-folder")) == strip(load("eval-one")))
PY
