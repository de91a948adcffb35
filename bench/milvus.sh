#!/usr/bin/env bash
# An index in Milvus against the same index in a folder, in one run.
#
#   bench/milvus.sh [CATALOG_DIR] [ROUNDS]     (default: sample-catalog, 3 rounds)
#
# Starts the embedded standalone Milvus (PyPI `milvus`, installed by
# scripts/test-servers.sh) on loopback, or uses MILVUS_URI=HOST:PORT. Each round builds a
# new index from the catalogue into a folder and into a fresh collection, then into another
# fresh collection by two `--shard` processes at once (both on this machine), re-runs both
# (nothing changed), opens each (`info`: the description and the item count) and times
# photo queries through each (`bench query`: the query photos in tests/fixtures/queries,
# 20 times each). Prints medians and collection/folder ratios. Uses target/release/lookalike
# (BIN=... for another build).
set -euo pipefail
cd "$(dirname "$0")/.."
cat=${1:-sample-catalog}
rounds=${2:-3}
bin=${BIN:-target/release/lookalike}
[ -x "$bin" ] || cargo build --release --locked
. bench/milvus-server.sh
secs() { local t=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $t" | bc; }
p50() { "$@" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["total"]["p50_ms"], d["total"]["p99_ms"], d["search"]["p50_ms"], d["search"]["p99_ms"])'; }
declare -A times
for r in $(seq "$rounds"); do
  coll="milvus://$addr/bench_$$_$r"
  rm -rf "$tmp/f"
  times[index_folder]+="$(secs "$bin" index "$cat" --index "$tmp/f" --json) "
  times[index_milvus]+="$(secs "$bin" index "$cat" --index "$coll" --json) "
  two() { "$bin" index "$cat" --index "${coll}_s" --shard 0/2 --json >/dev/null & local a=$!
          "$bin" index "$cat" --index "${coll}_s" --shard 1/2 --json >/dev/null; wait $a; }
  times[index_2shards]+="$(secs two) "
  times[rerun_folder]+="$(secs "$bin" index "$cat" --index "$tmp/f" --json) "
  times[rerun_milvus]+="$(secs "$bin" index "$cat" --index "$coll" --json) "
  times[open_folder]+="$(secs "$bin" info --index "$tmp/f" --json) "
  times[open_milvus]+="$(secs "$bin" info --index "$coll" --json) "
  echo "round $r query folder (total p50 p99, search p50 p99 ms): $(p50 "$bin" bench query --index "$tmp/f" tests/fixtures/queries/*.jpg)"
  echo "round $r query milvus (total p50 p99, search p50 p99 ms): $(p50 "$bin" bench query --index "$coll" tests/fixtures/queries/*.jpg)"
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A m
for k in index_folder index_milvus index_2shards rerun_folder rerun_milvus open_folder open_milvus; do
  m[$k]=$(echo "${times[$k]}" | median)
  printf '%-13s median %.2f s  (%s)\n' "$k" "${m[$k]}" "${times[$k]}"
done
printf 'index, two shards: milvus/folder %.2fx\n' "$(echo "${m[index_2shards]} / ${m[index_folder]}" | bc -l)"
for k in index rerun open; do
  printf '%s: milvus/folder %.2fx\n' "$k" "$(echo "${m[${k}_milvus]} / ${m[${k}_folder]}" | bc -l)"
done
