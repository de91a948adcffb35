#!/usr/bin/env bash
# Browser end-to-end test of the lookalike web page against a real server.
#
#   tests/e2e/run.sh <path/to/lookalike> <index-dir> [query-image]
#   tests/e2e/run.sh --mock                           # against tests/e2e/mock-server.mjs
#
# Env: QUERY_IMAGE (default: 3rd arg, else the sample catalogue's first image),
#      OUTFIT_IMAGE (a photo of several garments; default tests/fixtures/queries/outfit.jpg),
#      SHOTS_DIR (default tests/e2e/shots), PORT (default 18080), CHROMIUM (default /usr/bin/chromium).
# Needs node >= 18, npm and Debian's chromium (installed by CI, not here).
# Exit status: that of `node e2e.mjs` (non-zero also when the server does not come up).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${PORT:-18080}"
addr="127.0.0.1:${port}"

if [[ "${1:-}" == "--mock" ]]; then
  server_cmd=(node "$here/mock-server.mjs" --port "$port")
else
  if [[ $# -lt 2 ]]; then
    echo "usage: $0 <lookalike-binary> <index-dir> [query-image]   |   $0 --mock" >&2
    exit 2
  fi
  bin="$1" index="$2"
  [[ -x "$bin" ]] || { echo "run.sh: not an executable: $bin" >&2; exit 2; }
  [[ -d "$index" ]] || { echo "run.sh: no index directory: $index" >&2; exit 2; }
  # e2e.mjs serves the query photo on 127.0.0.1 for the URL search.
  server_cmd=("$bin" serve --index "$index" --addr "$addr" --fetch-allow 127.0.0.1)
fi

query="${QUERY_IMAGE:-${3:-/work/shared/data/sample-catalog/images/1000.jpg}}"
[[ -f "$query" ]] || { echo "run.sh: query image not found: $query (set QUERY_IMAGE)" >&2; exit 2; }
query="$(cd "$(dirname "$query")" && pwd)/$(basename "$query")"
outfit="${OUTFIT_IMAGE:-$here/../fixtures/queries/outfit.jpg}"
[[ -f "$outfit" ]] || { echo "run.sh: outfit image not found: $outfit (set OUTFIT_IMAGE)" >&2; exit 2; }
outfit="$(cd "$(dirname "$outfit")" && pwd)/$(basename "$outfit")"
shots="${SHOTS_DIR:-$here/shots}"
mkdir -p "$shots"
shots="$(cd "$shots" && pwd)"
log="$shots/server.log"

if curl -fsS -o /dev/null "http://$addr/healthz" 2>/dev/null; then
  echo "run.sh: something already answers on $addr; stop it first" >&2
  exit 2
fi

echo "run.sh: starting: ${server_cmd[*]} (log: $log)"
"${server_cmd[@]}" >"$log" 2>&1 &
server_pid=$!
cleanup() {
  if kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Wait up to 90 s for /healthz (loading a big index can take a while).
for ((i = 0; i < 180; i++)); do
  if curl -fsS -o /dev/null "http://$addr/healthz" 2>/dev/null; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run.sh: server exited before becoming healthy; last log lines:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  sleep 0.5
done
if ! curl -fsS -o /dev/null "http://$addr/healthz" 2>/dev/null; then
  echo "run.sh: server not healthy after 90 s; last log lines:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
echo "run.sh: server healthy on $addr"

cd "$here"
if [[ ! -d node_modules/playwright-core ]]; then
  if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund
  else
    npm install --no-audit --no-fund
  fi
fi

set +e
BASE_URL="http://$addr" QUERY_IMAGE="$query" OUTFIT_IMAGE="$outfit" SHOTS_DIR="$shots" node "$here/e2e.mjs"
rc=$?
set -e
echo "run.sh: e2e exit code $rc (screenshots in $shots)"
exit "$rc"
