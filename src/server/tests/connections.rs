//! The server over real TCP: slow clients are closed after the header timeout, uploads
//! that stop or trickle get 408 by the bytes that arrive (not the size they announce),
//! connections past an address's share are closed, the reserve answers `/healthz` and
//! `/metrics` while the general allowance is full, and `/healthz` answers throughout.
//! Attackers connect from other loopback addresses (127.0.0.2, ...) than the probes.

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

/// A connection from `source` (a loopback address) to `addr`.
async fn connect_from(source: &str, addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// The head of a search announcing a 20 MB body, as the idle-body attack sends it.
const ANNOUNCED_20MB: &[u8] = b"POST /api/search HTTP/1.1\r\nHost: t\r\nContent-Type: \
    multipart/form-data; boundary=x\r\nContent-Length: 20971520\r\n\r\n--x\r\n";

#[tokio::test]
async fn an_upload_that_stops_is_closed_after_the_idle_timeout_whatever_it_announced() {
    // Before: the deadline was 30 s plus the announced 20 MB at 32 KB/s, ~11 minutes.
    let (addr, _stop) = running(ServeOptions {
        body_idle_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    })
    .await;
    let mut s = connect_from("127.0.0.2", addr).await;
    s.write_all(ANNOUNCED_20MB).await.unwrap();
    // Nothing more comes.
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    let answer = answer.expect("the idle upload is still open after 5 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("no byte arrived") && answer.contains(r#"{"error":"#), "{answer}");
}

#[tokio::test]
async fn an_upload_that_trickles_below_the_minimum_rate_gets_408() {
    let (addr, _stop) = running(ServeOptions {
        body_idle_timeout: Duration::from_secs(60),
        body_grace: Duration::from_millis(300),
        min_body_rate: 10 * 1024,
        ..ServeOptions::default()
    })
    .await;
    let mut s = connect_from("127.0.0.2", addr).await;
    s.write_all(ANNOUNCED_20MB).await.unwrap();
    // A byte every 50 ms: never idle, but far below 10 KB/s.
    let (mut read, mut write) = s.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..200 {
            if write.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut out = Vec::new();
    let got = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut out)).await;
    trickle.abort();
    let answer = String::from_utf8_lossy(&out);
    assert!(got.is_ok(), "the trickling upload is still open after 5 s: {answer}");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("slower than 10 KB/s"), "{answer}");
}

#[tokio::test]
async fn an_upload_at_a_fair_pace_is_searched() {
    // Arriving in pieces, each well within the idle timeout and above the minimum rate.
    let (addr, _stop) = running(ServeOptions {
        body_idle_timeout: Duration::from_millis(500),
        body_grace: Duration::from_millis(100),
        min_body_rate: 64 * 1024,
        ..ServeOptions::default()
    })
    .await;
    let req = multipart(&[("image", &photo("1000")), ("k", b"2")]);
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/search HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: {}\r\n\
         Content-Length: {}\r\n\r\n",
        parts.headers["content-type"].to_str().unwrap(),
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(8 * 1024) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = read_all(&mut s, Duration::from_secs(30)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{}", &answer[..answer.len().min(300)]);
}

#[tokio::test]
async fn connections_past_an_address_share_are_closed_while_others_are_served() {
    let (addr, _stop) = running(ServeOptions {
        max_connections_per_address: 2,
        header_timeout: Duration::from_secs(60),
        ..ServeOptions::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.2", addr).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third from the same address is closed unanswered ...
    let mut third = connect_from("127.0.0.2", addr).await;
    let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let refused = read_all(&mut third, Duration::from_secs(5)).await;
    assert_eq!(refused.as_deref(), Some(""), "closed without an answer");
    // ... and another address is served.
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
    let mut other = connect_from("127.0.0.3", addr).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_all(&mut other, Duration::from_secs(5)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn probes_are_answered_on_the_reserve_while_idle_bodies_fill_the_server() {
    // Before: with the connection cap full of idle bodies, /healthz was closed unanswered.
    let (addr, _stop) = running(ServeOptions {
        max_connections: 4,
        reserved_connections: 2,
        max_connections_per_address: 4,
        ..ServeOptions::default()
    })
    .await;
    let mut idle = Vec::new();
    for source in ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"] {
        let mut s = connect_from(source, addr).await;
        s.write_all(ANNOUNCED_20MB).await.unwrap();
        idle.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let t0 = std::time::Instant::now();
        let answer = healthz(addr).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    }
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("lookalike_"), "{answer}");
    // Anything else on the reserve is told to come back, in JSON.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /api/stats HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let answer = read_all(&mut s, Duration::from_secs(5)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1") && answer.contains(r#"{"error":"#), "{answer}");
    drop(idle);
}

#[tokio::test]
async fn connections_past_every_allowance_are_closed_and_the_server_recovers() {
    let (addr, _stop) = running(ServeOptions {
        max_connections: 2,
        reserved_connections: 0,
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
    // Both places held, no reserve: a third connection is closed without an answer.
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
    // Over hyper's 100 headers: it answered 431 with an empty body.
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\n{}\r\n",
        (0..120).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
    );
    for (request, code) in [(long_url, "414"), (big_headers, "431"), (many_headers, "431")] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let answer = read_all(&mut s, Duration::from_secs(10)).await.unwrap_or_default();
        let shown = &answer[..answer.len().min(300)];
        assert!(answer.starts_with(&format!("HTTP/1.1 {code}")), "{shown}");
        assert!(answer.contains("application/json") && answer.contains(r#"{"error":"#), "{shown}");
    }
    // The server still answers the next client.
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
    // The same limit on a keep-alive connection's second request, which hyper parses
    // alone: before, an empty 431.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
    let mut first = vec![0u8; 4096];
    let n =
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut first)).await.unwrap().unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..n]));
    let many = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\n{}Connection: close\r\n\r\n",
        (0..120).map(|i| format!("X-H{i}: v\r\n")).collect::<String>()
    );
    s.write_all(many.as_bytes()).await.unwrap();
    let answer = read_all(&mut s, Duration::from_secs(10)).await.unwrap_or_default();
    let shown = &answer[..answer.len().min(300)];
    assert!(answer.starts_with("HTTP/1.1 431"), "{shown}");
    assert!(answer.contains(r#"{"error":"the request has more than 100 headers"}"#), "{shown}");
}

#[tokio::test]
async fn a_refused_upload_gets_its_answer_after_sending_its_body() {
    // Many clients send the whole body before they read the answer. Before: the
    // connection was closed with the body unread, and such a client's sending failed on a
    // reset instead of its reading the 413.
    let opts = ServeOptions { max_upload: 1024 * 1024, ..ServeOptions::default() };
    let (addr, _stop) = running(opts).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = 4 * 1024 * 1024;
    let head = format!(
        "POST /api/search HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; \
         boundary=x\r\nContent-Length: {body}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let sent = tokio::time::timeout(Duration::from_secs(20), s.write_all(&vec![b'a'; body])).await;
    assert!(matches!(sent, Ok(Ok(()))), "the body could not be sent: {sent:?}");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(matches!(read, Ok(Ok(_))), "{read:?}: {text}");
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains(r#"{"error":"#), "{text}");
}
