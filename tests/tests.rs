//! The integration tests: one binary (`cargo test --test integration`), one module per
//! area of the product, as ripgrep's `tests/tests.rs` does. One binary links the ~420
//! crates once, not once per file, and its tests share what is slow to make, each made
//! once per run and only when a test asks for it (`common`): the sample catalogue's
//! indexes, one S3-compatible server (moto) and one Milvus server.
//!
//! `tests/milvus_restart.rs` is the one test binary beside this one: it kills and restarts
//! a Milvus server of its own, and only one embedded Milvus runs on a machine at a time,
//! so it cannot run while this binary's shared one does.
//!
//! Autotests are off (Cargo.toml): a file of tests is compiled only when it is a `mod`
//! here or a `[[test]]` there, which `every_file_of_tests_is_compiled` checks.
//!
//! The tests run in parallel threads of this one process: a test sets no environment
//! variable and no working directory of the process (it gives its child processes theirs),
//! and writes only to folders, buckets and collections of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod architecture;
mod backends;
mod bucket;
mod cli;
mod fashion;
mod golden_index;
mod hostile;
mod live;
mod looks;
// Built without the `milvus` feature, lookalike has no Milvus to test.
#[cfg(feature = "milvus")]
mod milvus;
mod quality;
mod queries;
mod trained_model;

/// Every `.rs` file directly in tests/ is a module of this binary or a `[[test]]` of
/// Cargo.toml: with autotests off, a new file that neither names would never run.
#[test]
fn every_file_of_tests_is_compiled() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let this = std::fs::read_to_string(root.join("tests/tests.rs")).unwrap();
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
            files.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    files.sort();
    assert!(files.len() > 10, "{files:?}");
    for name in files {
        let module = this.lines().any(|l| l.trim() == format!("mod {name};"));
        let binary = cargo.contains(&format!("path = \"tests/{name}.rs\""));
        assert!(
            module || binary,
            "tests/{name}.rs is compiled by no test binary: add `mod {name};` to tests/tests.rs"
        );
    }
}
