#!/usr/bin/env bash
# Several servers, one index (issue 32, item 5): bench/follow.py on a Milvus collection and,
# as the peer, on a folder, both of the bundled sample catalogue, in one run:
#
#   bench/follow.sh [ROUNDS]        (default 20)
#
# Uses the embedded standalone Milvus or MILVUS_URI and target/release/lookalike (BIN=...).
# Writes target/bench/follow/{milvus,folder}.json.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}
bin=${BIN:-target/release/lookalike}
[ -x "$bin" ] || cargo build --release --locked
out=target/bench/follow
mkdir -p "$out"
. bench/milvus-server.sh
coll="follow_$$"
"$bin" index sample-catalog --index "milvus://$addr/$coll" --json > /dev/null
"$bin" index sample-catalog --index "$tmp/folder" --json > /dev/null
photo=tests/fixtures/queries/hat.jpg
BIN=$bin python3 bench/follow.py --index "milvus://$addr/$coll" --photo "$photo" --rounds "$rounds" --out "$out/milvus.json"
BIN=$bin python3 bench/follow.py --index "$tmp/folder" --photo "$photo" --rounds "$rounds" --out "$out/folder.json"
