#!/usr/bin/env bash
# Searching inside Milvus (issue 13): the 44k catalogue's collection searched by Milvus
# (HNSW, the default; then IVF_FLAT and FLAT, its vector index rebuilt in place) beside
# the folder index searched in memory, in one run:
#
#   bench/milvus-search.sh [CATALOG_DIR] [PHOTOS_DIR]
#       (defaults: ../shared/data/fashion-product-images-small, ../shared/data/street-photos/images)
#
# For each: recall@10 of every shopper photo's approximate search (`search --ann`)
# against the exact one (`search --exact`), and photo-query latency (`bench query --ann`,
# and `--exact` for the peer, on the photos named 0*). The collection is flushed before the index
# types are compared (Milvus builds a vector index on sealed segments only), and also
# measured as `index` leaves it. Uses the embedded standalone Milvus or MILVUS_URI,
# target/release/lookalike (BIN=...), and pymilvus in target/bench/pymilvus (made here)
# to rebuild the vector index. Writes target/bench/milvus-search/. AS_INDEXED=1 measures
# the folder and the collection as `index` leaves it only (no vector index rebuilt).
set -euo pipefail
cd "$(dirname "$0")/.."
cat=${1:-../shared/data/fashion-product-images-small}
photos=${2:-../shared/data/street-photos/images}
bin=${BIN:-target/release/lookalike}
[ -x "$bin" ] || cargo build --release --locked
out=target/bench/milvus-search
mkdir -p "$out"
py=target/bench/pymilvus/bin/python
if ! "$py" -c 'import pymilvus' 2>/dev/null; then
  python3 -m venv target/bench/pymilvus
  "$py" -m pip install -q --disable-pip-version-check "pymilvus==2.3.7" "setuptools<70" "marshmallow<4"
fi
. bench/milvus-server.sh
coll=k44_search_$$
folder="$tmp/folder"
"$bin" index "$cat" --index "$folder" --json > "$out/index-folder.json"
"$bin" index "$cat" --index "milvus://$addr/$coll" --json > "$out/index-collection.json"
all=("$photos"/*.jpg)
some=("$photos"/0*.jpg)
. bench/ann-measure.sh
reindex() { # TYPE PARAMS
  env -u MILVUS_URI "$py" - "$addr" "$coll" "$1" "$2" <<'PY'
import json, sys, time
from pymilvus import Collection, connections, utility
host, port = sys.argv[1].rsplit(":", 1)
connections.connect(host=host, port=port)
c = Collection(sys.argv[2])
c.flush()
c.release()
c.drop_index(index_name="vector")
c.create_index("vector", {"index_type": sys.argv[3], "metric_type": "IP", "params": json.loads(sys.argv[4])}, index_name="vector")
utility.wait_for_index_building_complete(sys.argv[2], index_name="vector")
c.load()
time.sleep(2)
PY
}
measure folder "$folder"
measure hnsw-as-indexed "milvus://$addr/$coll"
names=(folder hnsw-as-indexed)
if [ -z "${AS_INDEXED:-}" ]; then
  reindex HNSW '{"M": 16, "efConstruction": 200}'; measure hnsw "milvus://$addr/$coll"
  reindex IVF_FLAT '{"nlist": 211}'; measure ivf-flat "milvus://$addr/$coll"
  reindex FLAT '{}'; measure flat "milvus://$addr/$coll"
  names+=(hnsw ivf-flat flat)
fi
summarise "${names[@]}"
