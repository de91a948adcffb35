#!/usr/bin/env bash
# The scale run (issue 32, item 4): stateless query servers on a Milvus collection of the
# 44k catalogue and of 1M items, beside a folder index of the same 1M items, in one run:
#
#   bench/milvus-1m.sh [CATALOG_DIR] [PHOTOS_DIR]
#       (defaults: ../shared/data/fashion-product-images-small, ../shared/data/street-photos/images)
#
# 1. The 44k catalogue indexed into a folder (`index`; kept in target/bench/milvus-1m/ and
#    reused by the next run), then grown by `bench fill` (the real items, then copies drawn
#    near their vectors with their metadata, written through lookalike's own Milvus
#    client) into a collection of 44k, one of COUNT (default 1,000,000) items, and a folder
#    of COUNT items (then `repartition`, as `index` would at that size). Fill times kept.
# 2. Results: top-5 of every shopper photo on the 44k collection against the 44k folder
#    (default settings both), exact search on the 44k collection against the folder's (the
#    same rows, so identical), and recall@10 of the 1M collection's search (Milvus's
#    approximate index, default settings) against exact search over the same 1M items (the
#    1M folder's `search --exact`).
# 3. Load: `serve` on each index under bench/load.py's honest shoppers (CLIENTS, default
#    "1 16", SECONDS_EACH s each): searches/s, p50/p99, the server's peak memory (VmHWM)
#    and start-up time.
#
# Run it when nothing else shares the cores. Uses the embedded standalone Milvus
# (scripts/test-servers.sh) or MILVUS_URI=HOST:PORT, and target/release/lookalike
# (BIN=...). Writes target/bench/milvus-1m/ and prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
cat=${1:-../shared/data/fashion-product-images-small}
photos=${2:-../shared/data/street-photos/images}
bin=${BIN:-target/release/lookalike}
count=${COUNT:-1000000}
seconds=${SECONDS_EACH:-30}
clients=(${CLIENTS:-1 16})
[ -x "$bin" ] || cargo build --release --locked
out=target/bench/milvus-1m
mkdir -p "$out"
. bench/milvus-server.sh
all=("$photos"/*.jpg)
folder44=$out/folder-44k
folder1m=$out/folder-1m
k44="milvus://$addr/bench_k44_$$"
m1="milvus://$addr/bench_m1_$$"

if ! "$bin" info --index "$folder44" --json > "$out/info-folder-44k.json" 2>/dev/null; then
  rm -rf "$folder44"
  "$bin" index "$cat" --index "$folder44" --json > "$out/index-folder-44k.json"
  "$bin" info --index "$folder44" --json > "$out/info-folder-44k.json"
fi
n44=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["count"])' "$out/info-folder-44k.json")
fill() { "$bin" bench fill --index "$folder44" --into "$1" --count "$2" > "$out/fill-$3.json"; }
fill "$k44" "$n44" k44
fill "$m1" "$count" m1
rm -rf "$folder1m"
fill "$folder1m" "$count" folder-1m
"$bin" repartition --index "$folder1m" --json > "$out/repartition-folder-1m.json"

"$bin" search --index "$k44" --json -k 5 "${all[@]}" > "$out/top5-k44.jsonl"
"$bin" search --index "$folder44" --json -k 5 "${all[@]}" > "$out/top5-folder-44k.jsonl"
"$bin" search --index "$k44" --json -k 10 --exact "${all[@]}" > "$out/exact-k44.jsonl"
"$bin" search --index "$folder44" --json -k 10 --exact "${all[@]}" > "$out/exact-folder-44k.jsonl"
"$bin" search --index "$m1" --json -k 10 "${all[@]}" > "$out/top10-m1.jsonl"
"$bin" search --index "$folder1m" --json -k 10 --exact "${all[@]}" > "$out/exact-folder-1m.jsonl"
"$bin" search --index "$folder1m" --json -k 10 "${all[@]}" > "$out/top10-folder-1m.jsonl"

for c in "${clients[@]}"; do
  for name in k44 m1 folder-1m; do
    idx=$k44; [ $name = m1 ] && idx=$m1; [ $name = folder-1m ] && idx=$folder1m
    .venv/bin/python bench/load.py --bin "$bin" --index "$idx" --photos "$photos" \
      --seconds "$seconds" --clients "$c" --start-seconds 1800 --bombers 0 --slow 0 --idle 0 \
      --batch-flooders 0 --id-flooders 0 --upload-flooders 0 > "$out/load-$name-$c.json"
  done
done

python3 - "$out" "${clients[@]}" <<'PY'
import json, sys
out, clients = sys.argv[1], sys.argv[2:]
def lines(name):
    return [json.loads(l) for l in open(f"{out}/{name}.jsonl") if l.strip()]
def agree(got, want, k):
    hit = total = 0
    for g, w in zip(lines(got), lines(want)):
        ids = {r["id"] for r in w["results"][:k]}
        hit += len(ids & {r["id"] for r in g["results"][:k]}); total += len(ids)
    return hit / max(total, 1), len(lines(got))
for name in ["k44", "m1", "folder-1m"]:
    f = json.load(open(f"{out}/fill-{name}.json"))
    print(f"fill {name:10} {f['items']} items ({f['synthetic']} drawn) in {f['seconds']:.0f} s "
          f"(writes {f['write_seconds']:.0f} s, flush and vector index {f['flush_seconds']:.0f} s)")
print("repartition folder-1m", json.load(open(f"{out}/repartition-folder-1m.json")))
print("top-5 overlap, 44k collection vs folder: %.4f over %d photos" % agree("top5-k44", "top5-folder-44k", 5))
print("exact top-10, 44k collection vs folder: %.4f" % agree("exact-k44", "exact-folder-44k", 10)[0])
print("recall@10, 1M collection (default) vs exact over the 1M items: %.4f" % agree("top10-m1", "exact-folder-1m", 10)[0])
print("recall@10, 1M folder (default) vs exact: %.4f" % agree("top10-folder-1m", "exact-folder-1m", 10)[0])
for c in clients:
    for name in ["k44", "m1", "folder-1m"]:
        l = json.load(open(f"{out}/load-{name}-{c}.json"))
        print(f"{c:>3} shoppers  {name:10} {l['search_ok_per_second']:6.1f}/s  p50 {l['search_p50_ms']:7.1f}  "
              f"p99 {l['search_p99_ms']:7.1f} ms  peak {l['server_peak_mb']} MB  start {l['server_start_seconds']} s  "
              f"statuses {l['statuses'].get('shopper', {})}")
PY
