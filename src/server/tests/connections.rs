//! The server over real TCP: slow clients are closed after the header timeout, uploads
//! that trickle get 408, connections past the limit are closed, and `/healthz` answers
//! throughout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// A server on a free loopback port with `opts`; it stops when the sender is dropped.
async fn running(opts: ServeOptions) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = state_with(opts.clone());
    tokio::spawn(async move {
        serve_on(listener, state, &opts, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop)
}

/// What the server sends until it closes the connection (or `wait` passes).
async fn read_all(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(wait, stream.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

async fn healthz(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.unwrap();
    read_all(&mut s, Duration::from_secs(10)).await.unwrap_or_default()
}

#[tokio::test]
async fn a_client_slow_with_its_headers_is_closed_while_others_are_served() {
    let timeout = Duration::from_millis(300);
    let (addr, _stop) =
        running(ServeOptions { header_timeout: timeout, ..ServeOptions::default() }).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"), "others are served meanwhile");
    // The rest of the headers never comes: the server closes the connection on its own.
    let answer = read_all(&mut slow, Duration::from_secs(10)).await;
    assert!(answer.is_some(), "the slow connection is still open after 10 s");
    assert!(!answer.unwrap_or_default().contains("200 OK"));
}

#[tokio::test]
async fn an_upload_that_trickles_gets_408() {
    let (addr, _stop) = running(ServeOptions {
        body_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /api/search HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; \
          boundary=x\r\nContent-Length: 1000\r\n\r\n--x\r\n",
    )
    .await
    .unwrap();
    // Nine hundred and ninety-five bytes never come.
    let answer = read_all(&mut s, Duration::from_secs(10)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within"), "{answer}");
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_and_the_server_recovers() {
    let (addr, _stop) = running(ServeOptions {
        max_connections: 2,
        header_timeout: Duration::from_secs(60),
        ..ServeOptions::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
        idle.push(s);
    }
    // Both slots held: a third connection is closed without an answer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = healthz(addr).await;
    assert!(refused.is_empty(), "{refused}");
    drop(idle);
    // Once the idle clients go, the server answers again.
    let mut answered = false;
    for _ in 0..50 {
        if healthz(addr).await.starts_with("HTTP/1.1 200") {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "no answer after the idle connections closed");
}

#[tokio::test]
async fn heads_too_long_for_hyper_get_json_answers() {
    let (addr, _stop) = running(ServeOptions::default()).await;
    let long_url = format!("GET /api/items?x={} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(100_000));
    let big_headers =
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(500_000));
    for (request, code) in [(long_url, "414"), (big_headers, "431")] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let answer = read_all(&mut s, Duration::from_secs(10)).await.unwrap_or_default();
        let shown = &answer[..answer.len().min(300)];
        assert!(answer.starts_with(&format!("HTTP/1.1 {code}")), "{shown}");
        assert!(answer.contains("application/json") && answer.contains(r#"{"error":"#), "{shown}");
    }
    // The server still answers the next client.
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
}
