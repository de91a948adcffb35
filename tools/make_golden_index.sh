#!/usr/bin/env bash
# Writes tests/fixtures/golden-index-v<N>/ with the current lookalike: six sample photos
# indexed with the tiny test model, then one photo added through `add` and one item
# removed, so that every part of the format (keys, partition cells, added photos) is in the file.
# Run once per new format version; never rewrite an existing version's fixture.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: tools/make_golden_index.sh FORMAT_VERSION}
out=tests/fixtures/golden-index-v$version
[ ! -e "$out" ] || { echo "$out exists: golden indexes are never rewritten" >&2; exit 1; }
cargo build --quiet --features tract  # the earlier fixtures were written by tract
bin=target/debug/lookalike
tmp=$(mktemp -d)
mkdir -p "$tmp/cat/images"
head -1 sample-catalog/styles.csv > "$tmp/cat/styles.csv"
for id in 1000 1001 1030 1087 1180 1299; do
  cp "sample-catalog/images/$id.jpg" "$tmp/cat/images/"
  grep "^$id," sample-catalog/styles.csv >> "$tmp/cat/styles.csv"
done
"$bin" index "$tmp/cat" --index "$out" --model tests/fixtures/tiny-model/manifest.toml --backend tract >/dev/null
"$bin" add --index "$out" tests/fixtures/queries/hat.jpg --id added-hat --set articleType=Caps --backend tract
"$bin" remove --index "$out" 1001
rm -f "$out/lock.mdb"
rm -rf "$tmp"
