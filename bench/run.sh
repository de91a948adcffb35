#!/usr/bin/env bash
# Every figure of BENCHMARKS.md in one run (the fashion model's: bench/fashion.sh, called last), Rust and the Python reference side by side on
# the same machine at the same time. Results: target/bench/*.json (one JSON line each).
#   bench/run.sh                 # SUBSET=8000 photos for the throughput ratio; the full 44k for the rest
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DATA:-../shared/data}
CAT=$D/fashion-product-images-small
OUT=target/bench
SUBSET=${SUBSET:-8000}
M=models/efficientnet-lite0.onnx
PY=bench/.venv/bin/python
mkdir -p $OUT
./scripts/setup.sh
bench/setup-venv.sh >/dev/null
cargo build --release --locked
BIN=target/release/lookalike
date -u +"%Y-%m-%dT%H:%MZ" > $OUT/date.txt
{ lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed 's/Flags:.*avx512f.*/Flags: AVX-512 present/'; free -g | head -2; } > $OUT/machine.txt

echo "== indexing throughput, first $SUBSET photos: Rust then Python (same files)"
rm -rf $OUT/subset $OUT/idx-subset; mkdir -p $OUT/subset
ls $CAT/images | sort > $OUT/all-files.txt
# Copies, not links: index does not follow links that lead outside the catalogue folder.
head -n "$SUBSET" $OUT/all-files.txt | sed "s|^|$CAT/images/|" | xargs cp -t $OUT/subset
$BIN index $OUT/subset --index $OUT/idx-subset --model lite0 --json > $OUT/rust-index-subset.json
$PY bench/reference.py index --images $OUT/subset --model $M --size 224 --out $OUT/ref-subset.npy > $OUT/py-index-subset.json
$PY bench/reference.py index --images $OUT/subset --model $M --size 224 --workers 2 --limit 2000 --out $OUT/ref-subset-w2.npy > $OUT/py-index-subset-workers2.json

echo "== per stage, 2000 photos"
$BIN bench stages $CAT/images --limit 2000 > $OUT/rust-stages.json

echo "== full catalogue index (44k): plain Lite0 (the reference's features, 1280-d), then with colour (the ImageNet figures; the fashion model's are bench/fashion.sh)"
rm -rf $OUT/idx44k $OUT/idx44k-colour
/usr/bin/time -v $BIN index $CAT/images --metadata $CAT/styles.csv --index $OUT/idx44k --model lite0 --colour-weight 0 --json > $OUT/rust-index-44k.json 2> $OUT/rust-index-44k.time
$BIN index $CAT/images --metadata $CAT/styles.csv --index $OUT/idx44k-colour --model lite0 --json > $OUT/rust-index-44k-colour.json

echo "== quality"
$BIN eval --index $OUT/idx44k --leave-one-out -k 5 --json > $OUT/eval-loo.json
$BIN eval --index $OUT/idx44k --leave-one-out -k 10 --label articleType --json > $OUT/eval-loo-k10.json
$BIN eval --index $OUT/idx44k --queries $D/street-photos/queries.csv -k 5 --json > $OUT/eval-street.json
for I in idx44k idx44k-colour; do
  $BIN eval --index $OUT/$I --leave-one-out --holdout -k 5 --json > $OUT/eval-loo-holdout-$I.json
done
$BIN eval --index $OUT/idx44k --queries $D/street-photos/queries.csv -k 5 --query-resize crop --json > $OUT/eval-street-crop.json
$BIN eval --index $OUT/idx44k --queries $D/street-photos/queries.csv -k 5 --query-resize pad --json > $OUT/eval-street-pad.json

echo "== fashion quality: the colour descriptor (default index weight 0.3), query weights swept (exact: ranks as an index built with each)"
for W in 0 0.3 0.5 0.8; do
  $BIN eval --index $OUT/idx44k-colour --leave-one-out -k 5 --colour $W --json > $OUT/eval-loo-colour-$W.json
  $BIN eval --index $OUT/idx44k-colour --queries $D/street-photos/queries.csv -k 5 --colour $W --json > $OUT/eval-street-colour-$W.json
done

echo "== fashion quality: query expansion (default index)"
for N in 1 2 3 5; do
  $BIN eval --index $OUT/idx44k-colour --queries $D/street-photos/queries.csv -k 5 --expand $N --json > $OUT/eval-street-expand-$N.json
done
$BIN eval --index $OUT/idx44k-colour --leave-one-out -k 5 --expand 3 --json > $OUT/eval-loo-expand-3.json

echo "== fashion quality: the trained projection (in a copy: a projection changes the index's defaults)"
rm -rf $OUT/idx44k-trained && cp -r $OUT/idx44k-colour $OUT/idx44k-trained
S=$D/street-photos/queries.csv
for V in "linear --hidden 0" "lin-e5 --hidden 0 --epochs 5" "mlp-e3 --epochs 3" "mlp-e5 --epochs 5" "mlp-e8 --epochs 8" \
         "mlp1024-d128 --hidden 1024 --dim 128 --epochs 10" "drop3-e20 --input-dropout 0.3" "drop5-e20 --input-dropout 0.5" "mlp-e20"; do
  set -- $V; NAME=$1; shift
  $BIN train --index $OUT/idx44k-trained --json "$@" > $OUT/train-$NAME.json
  for M in 0.3 0.5 1.0; do
    $BIN eval --index $OUT/idx44k-trained --holdout --mix $M --colour 0.3 --json > $OUT/eval-holdout-$NAME-mix-$M.json
  done
  for M in 0.3 0.5; do
    $BIN eval --index $OUT/idx44k-trained --queries $S --mix $M --trained --json > $OUT/eval-street-$NAME-mix-$M.json
  done
done
# The kept one (the defaults, trained last above): timed alone, then mix x colour swept.
/usr/bin/time -v $BIN train --index $OUT/idx44k-trained --json > $OUT/train-44k.json 2> $OUT/train-44k.time
for M in 0 0.3 0.4 0.5 0.7; do for C in 0.3 0.6 0.8 1.0 1.5; do
  $BIN eval --index $OUT/idx44k-trained --holdout --mix $M --colour $C --json > $OUT/eval-holdout-mix-$M-colour-$C.json
done; done
$BIN eval --index $OUT/idx44k-trained --holdout --json > $OUT/eval-holdout-trained-default.json
$BIN eval --index $OUT/idx44k-trained --queries $S --json > $OUT/eval-street-trained-default.json
$BIN eval --index $OUT/idx44k-trained --queries $S --trained --json > $OUT/eval-street-trained-forced.json
$BIN eval --index $OUT/idx44k-trained --json > $OUT/eval-loo-all-trained-default.json
Q=$(ls sample-catalog/images/*.jpg | head -20)
for R in 1 2; do
  $BIN bench query --index $OUT/idx44k-trained $Q --repeat 10 --mix 0 > $OUT/query-untrained-$R.json
  $BIN bench query --index $OUT/idx44k-trained $Q --repeat 10 --trained > $OUT/query-trained-$R.json
done

echo "== search latency: Rust (44k and 1M) and numpy (44k)"
$BIN bench search --index $OUT/idx44k --scale 1000000 > $OUT/rust-search.json
# numpy peer: the same exact top-10 over a 44,441 x 1280 float32 matrix (latency does not
# depend on the values; the Python reference's own embeddings are used when present).
EMB=/tmp/ref-lite0.npy
if [ ! -f $EMB ]; then
  $PY -c "import numpy as np; r=np.random.default_rng(7).standard_normal((44441,1280),dtype=np.float32); r/=np.linalg.norm(r,axis=1,keepdims=True); np.save('$OUT/random44k.npy', r)"
  EMB=$OUT/random44k.npy
fi
$PY bench/reference.py search-bench --emb $EMB -k 10 --queries 200 > $OUT/py-search.json

FIRST_STREET=$(ls $D/street-photos/images | sort > $OUT/street-files.txt; head -n 1 $OUT/street-files.txt)
echo "== query latency, photo in -> results out"
$BIN bench query --index $OUT/idx44k $D/street-photos/images/$FIRST_STREET $CAT/images/15970.jpg --repeat 30 > $OUT/rust-query.json
/usr/bin/time -f "%e" -o $OUT/cli-search.time $BIN search --index $OUT/idx44k $CAT/images/15970.jpg > /dev/null

echo "== scale: partition (k-means cells) vs exact search at 1M (1280-d), on the real 44k and on 100k near-copy clusters; live adds of 1,000 photos into 44k and into 387 items"
for run in "1m --scale 1000000" "44k-real --scale 44441" "100k-clustered --scale 100000 --sources 4348"; do
  set -- $run
  rm -rf $OUT/ann-scratch
  $BIN bench ann --index $OUT/idx44k "${@:2}" --probes 4,8,16,32 --scratch $OUT/ann-scratch > $OUT/rust-ann-$1.json
done
rm -rf $OUT/ann-scratch
$BIN eval --index $OUT/idx44k --leave-one-out -k 5 --ann --json > $OUT/eval-loo-ann.json
rm -rf $OUT/idx-sample
$BIN index sample-catalog --index $OUT/idx-sample --model lite0 --colour-weight 0 --json > /dev/null
$BIN bench add --index $OUT/idx44k $D/street-photos/images --count 1000 --single 100 > $OUT/rust-add-44k.json
$BIN bench add --index $OUT/idx-sample $D/street-photos/images --count 1000 --single 100 > $OUT/rust-add-sample.json

echo "== HTTP: POST /api/search with ab, 1 and 16 clients"
$BIN serve --index $OUT/idx44k --addr 127.0.0.1:18181 > $OUT/serve.log 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null || true' EXIT
for i in $(seq 1 120); do curl -fsS -o /dev/null http://127.0.0.1:18181/healthz 2>/dev/null && break; sleep 0.5; done
B=lookalikebenchboundary
{ printf -- "--$B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
  cat $D/street-photos/images/$FIRST_STREET
  printf -- "\r\n--$B\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n5\r\n--$B--\r\n"; } > $OUT/body.bin
ab -q -n 300 -c 1 -p $OUT/body.bin -T "multipart/form-data; boundary=$B" http://127.0.0.1:18181/api/search > $OUT/ab-c1.txt
ab -q -n 800 -c 16 -p $OUT/body.bin -T "multipart/form-data; boundary=$B" http://127.0.0.1:18181/api/search > $OUT/ab-c16.txt
kill $SPID
bench/fashion.sh
echo "done: $OUT"
