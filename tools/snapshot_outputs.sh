#!/usr/bin/env bash
# Records what the CLI and the API answer on the sample catalogue, timings left out, so a
# refactoring can be checked to change nothing: run it before and after, then `diff -r`.
#
#   tools/snapshot_outputs.sh OUT_DIR [BINARY]
#
# Uses ../shared/data (sample catalogue, street photos); needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tools/snapshot_outputs.sh OUT_DIR [BINARY]}
bin=$(realpath "${2:-target/release/lookalike}")
# One CPU: ONNX Runtime's threads split sums differently from run to run (last-bit
# differences); one thread makes two runs of the same build byte-identical.
taskset -p -c 0 $$ >/dev/null
data=$(realpath ../shared/data)
cat=$data/sample-catalog
street=$data/street-photos
rm -rf "$out" && mkdir -p "$out"
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
server=
idx=$work/idx

# Timings differ run to run; everything else must not.
strip() {
  python3 -c '
import json, sys
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()
                if not (k.startswith("timing") or k.endswith("_ms") or k in ("seconds", "elapsed", "per_second", "indexed_at", "built_at", "created"))}
    if isinstance(v, list):
        return [clean(x) for x in v]
    return v
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        print(json.dumps(clean(json.loads(line)), sort_keys=True))
    except ValueError:
        print(line)
'
}

run() { # name, then the command's arguments
  local name=$1
  shift
  { "$bin" "$@" 2>"$out/$name.stderr" || echo "exit $?"; } | strip >"$out/$name.json"
  # Paths of the temporary folder differ between runs.
  sed -i -e "s#$work#WORK#g" -e "s/ in [0-9.]* s;/ in T s;/" -e "s/([0-9.]* s)/(T s)/" "$out/$name.json" "$out/$name.stderr"
}

"$bin" index "$cat" --index "$idx" >/dev/null 2>&1
photos=$(awk -F, 'NR > 1 && NR <= 13 { print $1 }' "$street/queries.csv" | sed "s#^#$street/images/#")
studio=$(printf "%s\n" "$cat"/images/100[0-3].jpg)

run info info --index "$idx" --json
run search-default search --index "$idx" --json -k 8 $photos $studio
run search-nocategory search --index "$idx" --json --category 0 $photos
run search-category-high search --index "$idx" --json --category 0.7 $photos
run search-locate-off search --index "$idx" --json --locate off $photos
run search-locate-on search --index "$idx" --json --locate on $studio
run search-filter search --index "$idx" --json --filter masterCategory=Footwear --filter masterCategory=Accessories $photos
run search-crop search --index "$idx" --json --crop 10,10,120,150 $studio
run search-pad search --index "$idx" --json --query-resize pad --colour 1 $photos
run search-similar search --index "$idx" --json --similar-to 1200 -k 10
run search-collapse search --index "$idx" --json --collapse 0.9 --min-score 0.4 $photos
run search-expand search --index "$idx" --json --expand 2 $photos
run search-exact search --index "$idx" --json --exact $photos
run search-ann search --index "$idx" --json --ann $photos
run search-bad-filter search --index "$idx" --json --filter nosuch=1 $photos
run search-missing-photo search --index "$idx" --json /nonexistent.jpg
run eval-loo eval --index "$idx" --json
run eval-holdout eval --index "$idx" --json --holdout
run eval-labels eval --index "$idx" --json --label gender --label articleType+gender --group-by gender
run eval-filter eval --index "$idx" --json --filter masterCategory=Apparel --category 0
run eval-queries eval --index "$idx" --json --queries "$street/queries.csv"
run eval-queries-holdout eval --index "$idx" --json --queries "$street/queries.csv" --holdout --locate off
run train train --index "$idx"
run search-trained search --index "$idx" --json --trained $photos
run search-mix search --index "$idx" --json --mix 0.7 $studio
run eval-trained eval --index "$idx" --json --holdout --trained
run eval-mix eval --index "$idx" --json --mix 0.2 --colour 0.5

# The API: the same index behind a server.
port=$((20000 + RANDOM % 20000))
"$bin" serve --index "$idx" --addr 127.0.0.1:$port --admin-token secret-token-1 >"$work/serve.log" 2>&1 &
server=$!
up=
for _ in $(seq 1 600); do
  if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then up=1; break; fi
  sleep 0.1
done
[ -n "$up" ] || { cat "$work/serve.log"; echo "the server did not start" >&2; exit 1; }
api() { # name, then curl's arguments
  local name=$1
  shift
  { curl -s -w '\n{"status": %{http_code}}\n' "$@" || true; } | strip >"$out/api-$name.json"
}
u=http://127.0.0.1:$port
first=$(echo $photos | cut -d' ' -f1)
api search -F image=@"$first" -F k=7 "$u/api/search"
api search-options -F image=@"$first" -F category=0 -F locate=off -F colour=1 -F filter=masterCategory=Footwear "$u/api/search"
api search-studio -F image=@"$(echo $studio | cut -d' ' -f1)" -F crop=0,0,100,100 -F resize=pad "$u/api/search"
api search-trained -F image=@"$first" -F trained=0.5 -F collapse=0.9 -F min_score=0.3 "$u/api/search"
api search-bad-k -F image=@"$first" -F k=0 "$u/api/search"
api search-bad-field -F image=@"$first" -F nosuch=1 "$u/api/search"
api search-no-image -F k=3 "$u/api/search"
api search-not-image -F image=@"$cat/styles.csv" "$u/api/search"
api items "$u/api/items?page=2&per_page=5&filter=gender=Kids"
api item "$u/api/items/1200"
api item-missing "$u/api/items/nosuch"
api similar "$u/api/items/1200/similar?k=6&category=0.5"
api similar-bad "$u/api/items/1200/similar?bogus=1"
api facets "$u/api/facets"
api stats "$u/api/stats"
api openapi "$u/api/openapi.json"
api healthz "$u/healthz"
api notfound "$u/nosuch"
api add-denied -F id=new1 -F image=@"$first" "$u/api/items"
api add -H 'Authorization: Bearer secret-token-1' -F id=new1 -F articleType=Shoes -F image=@"$first" "$u/api/items"
api after-add -F image=@"$first" "$u/api/search"
api remove -X DELETE -H 'Authorization: Bearer secret-token-1' "$u/api/items/new1"
api after-remove -F image=@"$first" "$u/api/search"
curl -s "$u/" | md5sum >"$out/api-page.md5"
curl -s -o /dev/null -w '%{http_code} %{content_type}\n' "$u/thumbs/1200" >"$out/api-thumb.txt"
curl -s "$u/images/1200" | md5sum >>"$out/api-thumb.txt"
echo "snapshot in $out"
