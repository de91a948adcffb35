//! The Milvus server a test process runs against, shared by the crate's unit tests and the
//! integration tests (both include this file): `MILVUS_URI` (`http://HOST:PORT` or
//! `HOST:PORT`) when set, else a real one (PyPI `milvus`, the embedded standalone server,
//! installed by scripts/test-servers.sh) started by scripts/milvus-server.py on the first
//! call; it stops, and removes its data, when this process ends.
// Said here, not only by the includers: clippy's test allowances (clippy.toml) see
// `#[cfg(test)]` only, and the library includes this file under
// `#[cfg(all(test, feature = "milvus"))]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::sync::OnceLock;

/// The server's host and port.
pub fn address() -> (String, u16) {
    static SERVER: OnceLock<(String, u16)> = OnceLock::new();
    SERVER.get_or_init(start).clone()
}

fn start() -> (String, u16) {
    if let Ok(uri) = std::env::var("MILVUS_URI") {
        let rest = uri.trim_start_matches("http://").trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').expect("MILVUS_URI is HOST:PORT");
        return (host.to_string(), port.parse().expect("MILVUS_URI's port"));
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(python.is_file(), "run ./scripts/test-servers.sh first (it installs Milvus)");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let data = std::env::temp_dir().join(format!("lookalike-milvus-{}", std::process::id()));
    let mut child = std::process::Command::new(python)
        .arg(root.join("scripts/milvus-server.py"))
        .arg(&data)
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start scripts/milvus-server.py");
    let stdout = child.stdout.take().expect("its output");
    // Its output is read to the end (a closed pipe would stop the server), saying when it
    // is ready.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line == "ready" {
                let _ = tx.send(());
            }
        }
    });
    let ready = rx.recv_timeout(std::time::Duration::from_secs(300));
    assert!(ready.is_ok(), "the Milvus test server did not start");
    // The child stops its server when this process ends (it watches its parent).
    std::mem::forget(child);
    ("127.0.0.1".to_string(), port)
}
