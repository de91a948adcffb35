#!/usr/bin/env bash
# Regenerate crates/milvus-proto/src/*.rs from milvus-proto's .proto files (as shipped in the
# crate milvus-sdk-rust 3.0.3, Apache-2.0). Needs only cargo: protoc comes prebuilt from
# the crate protoc-bin-vendored. Not part of the build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<'TOML'
[package]
name = "milvus-proto-gen"
version = "0.1.0"
edition = "2021"
[dependencies]
milvus-sdk-rust = "=3.0.3"
[build-dependencies]
tonic-prost-build = "0.14"
protoc-bin-vendored = "3"
TOML
echo 'fn main() {}' > "$work/src/main.rs"
cat > "$work/build.rs" <<'RS'
fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let out = std::path::PathBuf::from(std::env::var("GEN_OUT")?);
    let proto = std::path::PathBuf::from(std::env::var("GEN_PROTO")?);
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .out_dir(&out)
        .compile_protos(&[proto.join("milvus.proto")], &[proto])?;
    Ok(())
}
RS
(cd "$work" && cargo fetch -q)
proto=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/milvus-sdk-rust-3.0.3/milvus-proto/proto | head -1)
mkdir -p "$work/gen"
(cd "$work" && GEN_OUT="$work/gen" GEN_PROTO="$proto" cargo build -q)
for m in common schema milvus msg feder rg; do
  cp "$work/gen/milvus.proto.$m.rs" "$root/crates/milvus-proto/src/$m.rs"
done
echo "regenerated crates/milvus-proto/src/"
