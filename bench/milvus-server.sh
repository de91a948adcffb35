# Sourced by the Milvus benchmarks: sets $tmp (a scratch folder, removed on exit) and
# $addr (HOST:PORT of a Milvus server): MILVUS_URI's, or the embedded standalone Milvus
# (scripts/test-servers.sh installs it) started on loopback and stopped on exit.
./scripts/test-servers.sh
tmp=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; sleep 3; rm -rf "$tmp"' EXIT
if [ -n "${MILVUS_URI:-}" ]; then
  addr=${MILVUS_URI#http://}
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  .venv/bin/python scripts/milvus-server.py "$tmp/milvus" "$port" > "$tmp/milvus.log" 2>&1 &
  server=$!
  for _ in $(seq 600); do grep -q ready "$tmp/milvus.log" 2>/dev/null && break; sleep 0.5; done
  addr=127.0.0.1:$port
fi
