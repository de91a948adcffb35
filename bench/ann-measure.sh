# Sourced by the Milvus benchmarks that compare approximate search with exact search on
# one index. Needs $bin (the lookalike binary), $out (a folder), and the arrays all (the
# shopper photos whose recall is measured) and some (those timed).
#
#   measure NAME INDEX   writes $out/{ann,exact}-NAME.jsonl (`search -k 10 --ann` and
#                        `--exact` of every photo) and $out/query{,-exact}-NAME.json
#                        (`bench query --repeat 5`, each way)
#   summarise NAME...    prints a line per NAME: recall@10 of the approximate search
#                        against the exact one (and queries with a miss), search and
#                        query p50/p99 each way; with $out/index-NAME.seconds, the time
#                        its `index` took too
measure() {
  "$bin" search --index "$2" --json -k 10 --ann "${all[@]}" > "$out/ann-$1.jsonl"
  "$bin" search --index "$2" --json -k 10 --exact "${all[@]}" > "$out/exact-$1.jsonl"
  "$bin" bench query --repeat 5 --ann --index "$2" "${some[@]}" > "$out/query-$1.json"
  "$bin" bench query --repeat 5 --exact --index "$2" "${some[@]}" > "$out/query-exact-$1.json"
}
summarise() {
  python3 - "$out" "$@" <<'PY'
import json, os, sys
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
    secs = f"{out}/index-{name}.seconds"
    took = f"index {open(secs).read().strip()} s  " if os.path.exists(secs) else ""
    print(f"{name:16} {took}queries {len(ann)}  recall@10 {found / total:.4f} ({missed} with a miss)  "
          f"search p50/p99 {q['search']['p50_ms']:.2f} / {q['search']['p99_ms']:.2f} ms  "
          f"query p50/p99 {q['total']['p50_ms']:.1f} / {q['total']['p99_ms']:.1f} ms  "
          f"exact search p50/p99 {x['search']['p50_ms']:.2f} / {x['search']['p99_ms']:.2f} ms")
PY
}
