#!/usr/bin/env bash
# The test command: installs ONNX Runtime (scripts/setup.sh) and the servers the tests
# start (scripts/test-servers.sh), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/test-servers.sh
cargo test --locked "$@"
