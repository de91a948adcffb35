//! `kill -9` of the Milvus server in the middle of an index run: the run stops with an
//! error naming the server, and once the server is started again on its data, a re-run
//! leaves a complete collection, every item once, answering as a folder index does; a
//! `serve` on it (holding no item of its own) says it is not ready and answers searches,
//! reads and writes with 503 while the server is down again, and answers as before once
//! it is back.
//!
//! This test needs a server of its own to kill (the embedded standalone Milvus that
//! scripts/test-servers.sh installs), whatever `MILVUS_URI` says. It is the one test
//! binary beside the integration tests' (tests/tests.rs) because only one embedded server
//! runs on a machine at a time (it binds etcd's fixed ports): it cannot start while that
//! binary's shared server runs. Cargo runs test binaries one after the other, and the
//! shared server stops when its binary ends (scripts/milvus-server.py watches its parent).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// An embedded Milvus on a data folder of its own (scripts/milvus-server.py, which stops
/// it and removes the folder when this process ends or it is told to stop).
struct OwnServer {
    /// None once killed: its pid may belong to another process by then.
    wrapper: Option<std::process::Child>,
    data: PathBuf,
}

impl OwnServer {
    fn start(data: &Path, port: u16) -> Self {
        let python = root().join(".venv/bin/python");
        assert!(python.is_file(), "run ./scripts/test-servers.sh first (it installs Milvus)");
        let mut wrapper = std::process::Command::new(python)
            .arg(root().join("scripts/milvus-server.py"))
            .arg(data)
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start scripts/milvus-server.py");
        let stdout = wrapper.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        assert!(rx.recv_timeout(Duration::from_secs(300)).is_ok(), "Milvus did not start");
        Self { wrapper: Some(wrapper), data: data.to_path_buf() }
    }

    /// SIGKILL the server process itself (and its wrapper first, so that nothing starts it
    /// again, stops it cleanly or removes its data).
    fn kill9(mut self) {
        let mut wrapper = self.wrapper.take().unwrap();
        wrapper.kill().unwrap();
        wrapper.wait().unwrap();
        let binary = self.data.join("bin/milvus");
        let pids = std::process::Command::new("pgrep").arg("-f").arg(&binary).output().unwrap();
        let pids = String::from_utf8_lossy(&pids.stdout).to_string();
        assert!(!pids.trim().is_empty(), "no process runs {}", binary.display());
        for pid in pids.split_whitespace() {
            std::process::Command::new("kill").args(["-9", pid]).status().unwrap();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        // SIGTERM: the wrapper stops its server and removes the data.
        if let Some(wrapper) = &mut self.wrapper {
            let _ = std::process::Command::new("kill").arg(wrapper.id().to_string()).status();
            let _ = wrapper.wait();
        }
    }
}

/// The end of an embedded server's logs, for a failure's message.
fn server_log(data: &Path) -> String {
    let mut out = String::new();
    for name in ["milvus-stdout.log", "milvus-stderr.log"] {
        let text = std::fs::read_to_string(data.join("logs").join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        out.push_str(&format!("--- {name}:\n{tail}\n"));
    }
    out
}

fn run_json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

fn count(index: &str) -> Option<u64> {
    let out = lookalike(&["info", "--index", index, "--json"]);
    serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v["count"].as_u64())
}

#[test]
fn a_server_killed_mid_index_then_restarted_leaves_a_complete_collection_after_a_rerun() {
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    // Enough photos, written one per batch, that the run is still going when it is caught.
    const N: u64 = 387;
    let ids = small_catalog(&cat, N as usize);
    let folder = tmp.path().join("folder");
    ok(&["index", p(&cat), "--index", p(&folder), "--json"]);

    let data = std::env::temp_dir().join(format!("lookalike-killed-milvus-{}", std::process::id()));
    // The killed server's data (~500 MB) goes even when an assertion fails before a
    // restarted server would remove it.
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(data.clone());
    let port = free_port();
    let server = OwnServer::start(&data, port);
    let coll = format!("milvus://127.0.0.1:{port}/killed");
    let log = tmp.path().join("index.log");
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .args(["index", p(&cat), "--index", &coll, "--batch-size", "1", "--json"])
        .stdout(std::process::Stdio::null())
        // A file, not a pipe: nobody reads its progress lines while it runs.
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // The run goes on in short slices and is stopped (SIGSTOP) while the collection is
    // counted, so that it cannot finish between two looks however fast this machine is;
    // it is still stopped when its server is killed.
    let signal = |sig: &str| {
        let pid = run.id().to_string();
        assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    };
    signal("-STOP");
    let started = Instant::now();
    let before = loop {
        signal("-CONT");
        std::thread::sleep(Duration::from_millis(50));
        signal("-STOP");
        match count(&coll) {
            Some(n) if n >= 3 => break n,
            _ => assert!(started.elapsed() < Duration::from_secs(300), "the run wrote nothing"),
        }
    };
    assert!((3..N).contains(&before), "the run was not caught in the middle: {before} items");
    server.kill9();
    signal("-CONT");

    // The run stops within its calls' deadlines, naming the server it lost.
    let waited = Instant::now();
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        if waited.elapsed() > Duration::from_secs(150) {
            let _ = run.kill();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the index run hangs:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "the run went on without its server: {err}");
    assert!(err.contains("Milvus did not answer") || err.contains("cannot reach Milvus"), "{err}");

    // Started again on its data: the re-run embeds what is missing, and the collection
    // holds every item once and answers as the folder does.
    let server = OwnServer::start(&data, port);
    let info = lookalike(&["info", "--index", &coll, "--json"]);
    assert!(
        info.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&info.stderr),
        server_log(&data)
    );
    let cut = count(&coll).unwrap();
    assert!(cut >= before, "items written before the kill were lost: {cut} < {before}");
    let rerun = run_json(&["index", p(&cat), "--index", &coll, "--json"]);
    let (unchanged, added) = (rerun["unchanged"].as_u64(), rerun["added"].as_u64());
    assert_eq!(unchanged.zip(added).map(|(u, a)| u + a), Some(N), "{rerun}");
    assert_eq!(unchanged, Some(cut), "every item the collection kept is kept, {rerun}");
    assert_eq!(count(&coll), Some(N));
    assert_eq!(answers(&coll, &ids, 60), answers(p(&folder), &ids, 60));

    // A server on the collection is ready while Milvus answers. With Milvus gone, its
    // readiness and the writes that need Milvus answer 503 (JSON, a reason), its
    // liveness stays plain, and it is ready again with Milvus.
    let serve = Server::start(&coll);
    assert_eq!(serve.until("/readyz", 200), serde_json::json!({"ready": true}));
    let similar = format!("/api/items/{}/similar?k=3", ids[0]);
    let before = serve.results(&similar);
    let stats = serve.until("/api/stats", 200);
    assert_eq!(
        (stats["items_in_memory"].as_u64(), stats["count"].as_u64()),
        (Some(0), Some(N)),
        "{stats}"
    );
    server.kill9();
    let down = serve.until("/readyz", 503);
    assert!(down["error"].as_str().is_some_and(|r| r.contains("store")), "{down}");
    // It holds no item of its own (every read asks Milvus): searches, item reads and
    // writes are told to come back, nothing panics.
    for (method, path) in [
        ("GET", similar.clone()),
        ("GET", format!("/api/items/{}", ids[2])),
        ("GET", "/api/items?page=1".to_string()),
        ("DELETE", format!("/api/items/{}", ids[1])),
    ] {
        let (status, v) = serve.call(method, &path);
        assert_eq!(status, 503, "{method} {path}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains("try again")), "{v}");
    }
    assert_eq!(serve.call("GET", "/healthz").0, 200);
    let _server = OwnServer::start(&data, port);
    let started = Instant::now();
    while serve.call("GET", "/readyz").0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(120), "not ready again");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(serve.results(&similar), before);
}
