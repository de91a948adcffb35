//! Helpers shared by the integration tests: paths, running the binary, temp catalogues.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample() -> PathBuf {
    root().join("sample-catalog")
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

pub fn lookalike(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookalike")).args(args).output().expect("run lookalike")
}

/// Run and insist on success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = lookalike(args);
    assert!(
        out.status.success(),
        "lookalike {args:?} failed ({:?}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Copy the first `n` sample photos (by id order) and a matching styles.csv into `dir`.
pub fn small_catalog(dir: &Path, n: usize) -> Vec<String> {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let csv = std::fs::read_to_string(sample().join("styles.csv")).unwrap();
    let mut lines = csv.lines();
    let mut out = String::from(lines.next().unwrap());
    out.push('\n');
    let mut ids = Vec::new();
    for line in lines.take(n) {
        let id = line.split(',').next().unwrap().to_string();
        std::fs::copy(
            sample().join(format!("images/{id}.jpg")),
            dir.join(format!("images/{id}.jpg")),
        )
        .unwrap();
        out.push_str(line);
        out.push('\n');
        ids.push(id);
    }
    std::fs::write(dir.join("styles.csv"), out).unwrap();
    ids
}

/// The ONNX Runtime library must be installed for the tests (scripts/setup.sh does it).
pub fn require_ort() {
    assert!(
        lookalike::embed::find_onnxruntime().is_some(),
        "ONNX Runtime not found: run ./scripts/setup.sh (or set ORT_DYLIB_PATH) before the tests"
    );
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// An `index --json` report's `skipped` list: (relative path, reason) pairs.
pub fn skipped(report: &serde_json::Value) -> Vec<(String, String)> {
    report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[0].as_str().unwrap().to_string(), s[1].as_str().unwrap().to_string()))
        .collect()
}
