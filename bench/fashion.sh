#!/usr/bin/env bash
# The fashion model's figures (BENCHMARKS.md, "Fashion model"), beside its peers measured
# in the same run: indexing throughput against the Python reference (Lite0, 224 px, fp32)
# on the same photos; quality on the catalogue's held-out split and on the street photos'
# test part (default settings, then each part switched off); search latency at 44k
# against numpy. Results: target/bench/fashion-*.json (one JSON line each).
#   bench/fashion.sh            # SUBSET=8000 photos for the throughput ratio
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DATA:-../shared/data}
CAT=$D/fashion-product-images-small
S=$D/street-photos/queries.csv
OUT=target/bench
SUBSET=${SUBSET:-8000}
PY=bench/.venv/bin/python
mkdir -p $OUT
./scripts/setup.sh
bench/setup-venv.sh >/dev/null
cargo build --release --locked
BIN=target/release/lookalike

echo "== indexing throughput, first $SUBSET photos, one after the other: Rust (fashion, 128 px), Python reference (Lite0, 224 px), Rust again"
rm -rf $OUT/subset; mkdir -p $OUT/subset
ls $CAT/images | sort > $OUT/all-files.txt
# Copies, not links: index does not follow links that lead outside the catalogue folder.
head -n "$SUBSET" $OUT/all-files.txt | sed "s|^|$CAT/images/|" | xargs cp -t $OUT/subset
for R in 1 2; do
  rm -rf $OUT/fashion-idx-subset
  $BIN index $OUT/subset --index $OUT/fashion-idx-subset --json > $OUT/fashion-index-subset-$R.json
  [ $R = 1 ] && $PY bench/reference.py index --images $OUT/subset --model models/efficientnet-lite0.onnx --size 224 --out $OUT/ref-subset.npy > $OUT/fashion-py-index-subset.json
done

echo "== full catalogue (44k), defaults"
rm -rf $OUT/fashion-idx44k
/usr/bin/time -v $BIN index $CAT/images --metadata $CAT/styles.csv --index $OUT/fashion-idx44k --json > $OUT/fashion-index-44k.json 2> $OUT/fashion-index-44k.time
I=$OUT/fashion-idx44k

echo "== quality: held-out split (leave-one-out) and the street photos' test part"
$BIN eval --index $I --leave-one-out --holdout -k 5 --json > $OUT/fashion-holdout.json
$BIN eval --index $I --leave-one-out --holdout -k 5 --category 0 --json > $OUT/fashion-holdout-category0.json
$BIN eval --index $I --leave-one-out --holdout -k 5 --colour 0 --json > $OUT/fashion-holdout-colour0.json
$BIN eval --index $I --leave-one-out --holdout -k 5 --colour 0 --category 0 --json > $OUT/fashion-holdout-plain.json
$BIN eval --index $I --leave-one-out -k 5 --json > $OUT/fashion-loo-all.json
$BIN eval --index $I --queries $S --holdout -k 5 --json > $OUT/fashion-street.json
$BIN eval --index $I --queries $S --holdout -k 5 --category 0 --json > $OUT/fashion-street-category0.json
$BIN eval --index $I --queries $S --holdout -k 5 --locate off --json > $OUT/fashion-street-locate-off.json
$BIN eval --index $I --queries $S --holdout -k 5 --locate off --category 0 --json > $OUT/fashion-street-plain.json
$BIN eval --index $I --queries $S --holdout -k 5 --keep-nearest off --json > $OUT/fashion-street-keep-nearest-off.json
$BIN eval --index $I --queries $S -k 5 --json > $OUT/fashion-street-all1000.json
for W in 0.1 0.5 0.7; do
  $BIN eval --index $I --leave-one-out --holdout -k 5 --category $W --json > $OUT/fashion-holdout-category$W.json
  $BIN eval --index $I --queries $S --holdout -k 5 --category $W --json > $OUT/fashion-street-category$W.json
done

echo "== the peer: ImageNet Lite0 (224 px, colour 0.3: the previous default) on the same splits"
rm -rf $OUT/fashion-lite0-idx44k
$BIN index $CAT/images --metadata $CAT/styles.csv --index $OUT/fashion-lite0-idx44k --model lite0 --json > $OUT/fashion-lite0-index-44k.json
$BIN eval --index $OUT/fashion-lite0-idx44k --leave-one-out --holdout -k 5 --json > $OUT/fashion-lite0-holdout.json
$BIN eval --index $OUT/fashion-lite0-idx44k --queries $S --holdout -k 5 --json > $OUT/fashion-lite0-street.json
$BIN eval --index $OUT/fashion-lite0-idx44k --queries $S --holdout -k 5 --category 0.3 --json > $OUT/fashion-lite0-street-vote.json

echo "== garment localisation on far-away snapshots: the street test photos shrunk into a corner of a textured floor"
$PY bench/far_snapshots.py --queries $S --out $OUT/far > /dev/null
$BIN eval --index $I --queries $OUT/far/queries.csv -k 5 --json > $OUT/fashion-far.json
$BIN eval --index $I --queries $OUT/far/queries.csv -k 5 --locate off --json > $OUT/fashion-far-locate-off.json
$BIN eval --index $I --queries $OUT/far/queries.csv -k 5 --keep-nearest off --json > $OUT/fashion-far-keep-nearest-off.json

echo "== search latency at 44k: Rust (the index's own vectors) and numpy (a matrix of the same shape)"
$BIN bench search --index $I > $OUT/fashion-search.json
DIM=$(grep -o '"dim":[0-9]*' $OUT/fashion-search.json | head -1 | cut -d: -f2)
$PY -c "import numpy as np; r=np.random.default_rng(7).standard_normal((44441,$DIM),dtype=np.float32); r/=np.linalg.norm(r,axis=1,keepdims=True); np.save('$OUT/random44k-$DIM.npy', r); open('$OUT/random44k-$DIM.ids.txt','w').write(''.join(f'{i}\\n' for i in range(len(r))))"
$PY bench/reference.py search-bench --emb $OUT/random44k-$DIM.npy -k 10 --queries 200 > $OUT/fashion-py-search.json
ls $D/street-photos/images/*.jpg | sort > $OUT/street-files.txt
Q=$(head -n 20 $OUT/street-files.txt)
$BIN bench query --index $I $Q --repeat 5 > $OUT/fashion-query.json
echo "done: $OUT/fashion-*"
