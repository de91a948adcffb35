#!/usr/bin/env bash
# The main job on the bundled sample: build, index sample-catalog/, search it with a few
# shopper photos. Then `target/release/lookalike serve --index demo-index` shows the page.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked
bin=target/release/lookalike
$bin index sample-catalog --index demo-index
$bin info --index demo-index
$bin search --index demo-index -k 5 tests/fixtures/queries/*.jpg
echo
echo "Next: $bin serve --index demo-index   (then open http://127.0.0.1:8080)"
