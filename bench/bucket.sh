#!/usr/bin/env bash
# Indexing from object storage against indexing the same photos from a folder, in one run.
#
#   bench/bucket.sh [CATALOG_DIR] [ROUNDS]     (default: sample-catalog, 3 rounds)
#
# Starts moto's S3 server (scripts/test-servers.sh installs it) on loopback, uploads the
# catalogue's photos and styles.csv under s3://bench/cat, then alternates, ROUNDS times:
# a new index from the folder, a new index from the bucket, and a re-run on each (nothing
# changed: the photos are read and hashed again, none embedded). Prints the median
# wall time of each and the bucket/folder ratios. Uses target/release/lookalike.
set -euo pipefail
cd "$(dirname "$0")/.."
cat=${1:-sample-catalog}
rounds=${2:-3}
bin=target/release/lookalike
[ -x "$bin" ] || cargo build --release --locked
./scripts/test-servers.sh
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
tmp=$(mktemp -d)
trap 'kill $moto 2>/dev/null; rm -rf "$tmp"' EXIT
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.2; done
.venv/bin/python - "$cat" <<'EOF'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.create_bucket(Bucket="bench")
root = sys.argv[1]
n = 0
for d, _, files in os.walk(root):
    for f in files:
        path = os.path.join(d, f)
        s3.upload_file(path, "bench", "cat/" + os.path.relpath(path, root))
        n += 1
print(f"uploaded {n} files", file=sys.stderr)
EOF
secs() { local t=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $t" | bc; }
declare -A times
for r in $(seq "$rounds"); do
  rm -rf "$tmp/f" "$tmp/b"
  times[folder]+="$(secs "$bin" index "$cat" --index "$tmp/f" --json) "
  times[bucket]+="$(secs "$bin" index s3://bench/cat --index "$tmp/b" --json) "
  times[folder_rerun]+="$(secs "$bin" index "$cat" --index "$tmp/f" --json) "
  times[bucket_rerun]+="$(secs "$bin" index s3://bench/cat --index "$tmp/b" --json) "
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A m
for k in folder bucket folder_rerun bucket_rerun; do
  m[$k]=$(echo "${times[$k]}" | median)
  printf '%-13s median %.2f s  (%s)\n' "$k" "${m[$k]}" "${times[$k]}"
done
printf 'new index: bucket/folder %.2fx; re-run: bucket/folder %.2fx\n' \
  "$(echo "${m[bucket]} / ${m[folder]}" | bc -l)" "$(echo "${m[bucket_rerun]} / ${m[folder_rerun]}" | bc -l)"
