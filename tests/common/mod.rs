//! Helpers shared by the integration tests: paths, running the binary, temp catalogues,
//! and what a whole test run shares (the sample's indexes, the S3 and Milvus servers).
//! Both test binaries include it; each uses what it needs of it.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod fixtures;
#[cfg(feature = "milvus")]
mod milvus_server;
pub mod s3;

/// The backend the tiny-model and write tests run on: tract when built in (`--features
/// tract`, so that its paths stay tested there), ONNX Runtime otherwise.
pub const TEST_BACKEND: &str = if cfg!(feature = "tract") { "tract" } else { "ort" };

/// [`TEST_BACKEND`] for the library's API.
pub fn test_backend() -> lookalike::embed::BackendKind {
    if cfg!(feature = "tract") {
        lookalike::embed::BackendKind::Tract
    } else {
        lookalike::embed::BackendKind::Ort
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample() -> PathBuf {
    root().join("sample-catalog")
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Query photos are embedded by the index's own model in tests unless a test says
/// otherwise (`--query-precision`, which overrides this): `auto` picks the int8 twin by
/// the CPU, and exact answers (golden ids, a photo finding its own vector at 1) must not
/// depend on the machine. The twin has tests of its own, with the flag.
pub const QUERY_PRECISION: (&str, &str) = ("LOOKALIKE_QUERY_PRECISION", "fp32");

pub fn lookalike(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .args(args)
        .env(QUERY_PRECISION.0, QUERY_PRECISION.1)
        .output()
        .expect("run lookalike")
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

/// A loopback port nothing listens on (at the moment it is asked for).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Run the binary with extra environment variables.
pub fn lookalike_env(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lookalike"));
    cmd.args(args).env(QUERY_PRECISION.0, QUERY_PRECISION.1);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run lookalike")
}

/// A `lookalike serve` process on the index `idx` (a folder or a `milvus://` address),
/// following outside writes every 0.2 s, killed when dropped.
pub struct Server {
    child: std::process::Child,
    pub port: u16,
}

impl Server {
    pub fn start(idx: &str) -> Self {
        let port = free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_lookalike"))
            .args(["serve", "--index", idx, "--backend", TEST_BACKEND])
            .args(["--addr", &format!("127.0.0.1:{port}"), "--admin-token", "follow-secret"])
            .args(["--follow-interval", "0.2"])
            .env(QUERY_PRECISION.0, QUERY_PRECISION.1)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed().as_secs() < 60, "serve did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child, port }
    }

    /// Status and JSON body of a request.
    pub fn call(&self, method: &str, path: &str) -> (u16, serde_json::Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let req = reqwest::Client::new()
                .request(method.parse().unwrap(), &url)
                .bearer_auth("follow-secret");
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body = res.bytes().await.unwrap_or_default();
            (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
        })
    }

    /// The results of a search (its timing differs from call to call).
    pub fn results(&self, path: &str) -> serde_json::Value {
        let (status, v) = self.call("GET", path);
        assert_eq!(status, 200, "{v}");
        v["results"].clone()
    }

    /// Wait (up to 10 s) until `path` answers `status`.
    pub fn until(&self, path: &str, status: u16) -> serde_json::Value {
        let started = std::time::Instant::now();
        loop {
            let (s, v) = self.call("GET", path);
            if s == status {
                return v;
            }
            assert!(started.elapsed().as_secs() < 10, "{path} still answers {s}: {v}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two servers on the index `idx` of 12 items (`ids` among them) answer alike and each
/// sees the other's writes and those of the command line.
pub fn servers_see_each_others_writes(idx: &str, ids: &[String]) {
    let (a, b) = (Server::start(idx), Server::start(idx));
    let similar = format!("/api/items/{}/similar?k=5", ids[0]);
    assert_eq!(a.results(&similar), b.results(&similar));
    assert_eq!(a.results(&similar).as_array().map(Vec::len), Some(5));

    // A removal through one server is gone from the other.
    let (s, v) = a.call("DELETE", &format!("/api/items/{}", ids[1]));
    assert_eq!(s, 200, "{v}");
    b.until(&format!("/api/items/{}", ids[1]), 404);

    // An item added by the command line is found by both.
    let hat = fixture("queries/hat.jpg");
    ok(&["add", "--index", idx, "--backend", TEST_BACKEND, "--id", "cli-hat", p(&hat)]);
    for server in [&a, &b] {
        server.until("/api/items/cli-hat", 200);
        let stats = server.until("/api/stats", 200);
        assert_eq!(stats["count"], 12, "{stats}");
    }
    let hat_similar = "/api/items/cli-hat/similar?k=5";
    assert_eq!(a.results(hat_similar), b.results(hat_similar));
    assert_eq!(a.results(&similar), b.results(&similar));
    assert_eq!(a.results(&similar).as_array().map(Vec::len), Some(5));

    // A write through the second server builds on what the first one removed.
    let (s, v) = b.call("DELETE", "/api/items/cli-hat");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total_items"], 11, "{v}");
    a.until("/api/items/cli-hat", 404);
}

/// A fresh collection's address on the test server, unique to this process and `name`.
#[cfg(feature = "milvus")]
pub fn milvus_index(name: &str) -> String {
    let (host, port) = milvus_server::address();
    format!("milvus://{host}:{port}/{name}_{}", std::process::id())
}

/// A report without its timings, which differ run to run.
pub fn timeless(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| !k.contains("second") && !k.ends_with("_ms"));
    }
    v
}

/// What an index holds, as far as answers show it: the leave-one-out figures over every
/// item, and the neighbours (ids, scores, metadata) of every `every`-th of `ids`.
pub fn answers(index: &str, ids: &[String], every: usize) -> Vec<serde_json::Value> {
    let run = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&ok(args)).unwrap() };
    let eval = run(&["eval", "--leave-one-out", "-k", "5", "--json", "--index", index]);
    let mut out = vec![timeless(eval)];
    for id in ids.iter().step_by(every.max(1)) {
        let v = run(&["search", "--index", index, "--similar-to", id, "-k", "5", "--json"]);
        out.push(v["results"].clone());
    }
    out
}
