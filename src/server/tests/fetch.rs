//! Query photos by URL, fetched from a real web server on loopback: the photo, and each
//! way a URL can go wrong (refused addresses, also after a redirect or a name lookup;
//! unreachable, not an image, too large, too slow, too many redirects).

use std::net::SocketAddr;

use axum::response::Redirect;

use super::*;
use crate::fetch::{FetchOptions, parse_allow};

/// A web server on 127.0.0.1 with a photo and the ways a URL can go wrong.
async fn photo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let jpeg = |body: Vec<u8>| ([(header::CONTENT_TYPE, "image/jpeg")], body).into_response();
    let web = Router::new()
        .route("/photo.jpg", get(move || async move { jpeg(photo("1003")) }))
        .route("/page.html", get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<p>hi</p>") }))
        .route("/big.jpg", get(move || async move { jpeg(vec![0xff; 3 * 1024 * 1024]) }))
        .route(
            "/big-stream.jpg",
            // No Content-Length: the limit must hold while reading.
            get(|| async {
                let chunks =
                    (0..48).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 64 * 1024])));
                let body =
                    Body::from_stream(futures_util::stream::iter(chunks.collect::<Vec<_>>()));
                ([(header::CONTENT_TYPE, "image/jpeg")], body).into_response()
            }),
        )
        .route(
            "/slow.jpg",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/to-photo", get(|| async { Redirect::temporary("/photo.jpg") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route(
            "/choices",
            get(|| async { (StatusCode::MULTIPLE_CHOICES, [(header::LOCATION, "/photo.jpg")]) }),
        )
        .route(
            "/not-modified",
            get(|| async { (StatusCode::NOT_MODIFIED, [(header::LOCATION, "/photo.jpg")]) }),
        )
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        )
        .route(
            "/to-other-loopback",
            get(move || async move {
                Redirect::temporary(&format!("http://127.0.0.2:{}/photo.jpg", addr.port()))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, web).await.unwrap() });
    addr
}

/// A server that fetches from 127.0.0.1 only (not the rest of loopback), with small limits.
fn fetching(allow: &[&str]) -> Router {
    let fetch = FetchOptions {
        max_bytes: 1024 * 1024,
        timeout: std::time::Duration::from_secs(2),
        max_redirects: 3,
        allow: allow.iter().map(|a| parse_allow(a).unwrap()).collect(),
    };
    app(state_with(ServeOptions { fetch, ..ServeOptions::default() }))
}

async fn by_url(router: Router, url: &str) -> (StatusCode, Value) {
    search(router, &[("url", url.as_bytes()), ("k", b"3"), ("category", b"0")]).await
}

#[tokio::test]
async fn a_photo_by_url_is_searched_as_if_uploaded() {
    let web = photo_server().await;
    let router = fetching(&["127.0.0.1"]);
    let (s, uploaded) =
        search(router.clone(), &[("image", &photo("1003")), ("k", b"3"), ("category", b"0")]).await;
    assert_eq!(s, StatusCode::OK, "{uploaded}");
    let ids = |v: &Value| -> Vec<String> {
        v["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().into()).collect()
    };
    for url in [
        format!("http://{web}/photo.jpg"),
        // A redirect within the allowed addresses is followed.
        format!("http://{web}/to-photo"),
        // A host name is resolved, and its allowed address used.
        format!("http://localhost:{}/photo.jpg", web.port()),
    ] {
        let (s, v) = by_url(router.clone(), &url).await;
        assert_eq!(s, StatusCode::OK, "{url}: {v}");
        assert_eq!(ids(&v), ids(&uploaded), "{url}");
        assert_eq!(v["results"][0]["id"], "1003");
    }
}

#[tokio::test]
async fn refused_addresses_are_refused_before_and_after_redirects() {
    let web = photo_server().await;
    // Without an allow-list, the machine itself is off limits.
    let (s, v) = by_url(fetching(&[]), &format!("http://{web}/photo.jpg")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_of(&v).contains("loopback address; fetching from it is refused"), "{v}");
    let (s, v) = by_url(fetching(&[]), &format!("http://localhost:{}/photo.jpg", web.port())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_of(&v).contains("loopback"), "{v}");
    // Before: the message told what the name resolved to.
    assert!(!error_of(&v).contains("127.0.0.1") && !error_of(&v).contains("::1"), "{v}");
    let router = fetching(&["127.0.0.1"]);
    for (url, kind) in [
        ("http://169.254.169.254/latest/meta-data/".to_string(), "link-local"),
        ("http://10.1.2.3/x.jpg".to_string(), "private"),
        ("http://[::1]/x.jpg".to_string(), "loopback"),
        ("http://[::ffff:192.168.0.1]/x.jpg".to_string(), "private"),
        (format!("http://{web}/to-metadata"), "link-local"),
        (format!("http://{web}/to-other-loopback"), "loopback"),
    ] {
        let (s, v) = by_url(router.clone(), &url).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {v}");
        assert!(error_of(&v).contains(kind) && error_of(&v).contains("refused"), "{url}: {v}");
    }
}

#[tokio::test]
async fn urls_that_go_wrong_get_a_message_naming_the_problem() {
    let web = photo_server().await;
    let router = fetching(&["127.0.0.1"]);
    for (url, status, says) in [
        ("http://127.0.0.1:1/x.jpg".to_string(), StatusCode::BAD_GATEWAY, "could not fetch"),
        (format!("http://{web}/nothing.jpg"), StatusCode::BAD_REQUEST, "answered HTTP 404"),
        (format!("http://{web}/page.html"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "not an image"),
        (format!("http://{web}/big.jpg"), StatusCode::PAYLOAD_TOO_LARGE, "1 MB download limit"),
        (
            format!("http://{web}/big-stream.jpg"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "1 MB download limit",
        ),
        (format!("http://{web}/slow.jpg"), StatusCode::BAD_GATEWAY, "did not arrive within 2 s"),
        (format!("http://{web}/loop"), StatusCode::BAD_REQUEST, "redirected more than 3 times"),
        // Before: followed as redirects.
        (format!("http://{web}/choices"), StatusCode::BAD_REQUEST, "answered HTTP 300"),
        (format!("http://{web}/not-modified"), StatusCode::BAD_REQUEST, "answered HTTP 304"),
        ("ftp://example.com/x.jpg".to_string(), StatusCode::BAD_REQUEST, "only http and https"),
        ("not a url".to_string(), StatusCode::BAD_REQUEST, "not a usable photo URL"),
        (String::new(), StatusCode::BAD_REQUEST, "'url' field is empty"),
    ] {
        let (s, v) = by_url(router.clone(), &url).await;
        assert_eq!(s, status, "{url}: {v}");
        assert!(error_of(&v).contains(says), "{url}: {v}");
    }
    // Before: each 502 was logged at ERROR and counted as the server's own error.
    let (_, _, b) =
        send(router.clone(), Request::get("/metrics").body(Body::empty()).unwrap()).await;
    let text = String::from_utf8_lossy(&b);
    assert!(text.contains(r#"lookalike_errors_total{reason="upstream"} 2"#), "{text}");
    assert!(!text.contains(r#"lookalike_errors_total{reason="server"}"#), "{text}");
    assert!(text.contains(r#"lookalike_url_fetches_total{outcome="upstream"} 2"#), "{text}");
    // A photo and a URL at once is ambiguous.
    let url = format!("http://{web}/photo.jpg");
    let (s, v) = search(router, &[("image", &photo("1003")), ("url", url.as_bytes())]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_of(&v).contains("one 'image' or 'url'"), "{v}");
}

#[tokio::test]
async fn a_batch_fetches_its_urls_and_keeps_their_order() {
    let web = photo_server().await;
    let router = fetching(&["127.0.0.1"]);
    let (slow, page, good) = (
        format!("http://{web}/slow.jpg"),
        format!("http://{web}/page.html"),
        format!("http://{web}/photo.jpg"),
    );
    let fields: &[(&str, &[u8])] = &[
        ("url", slow.as_bytes()),
        ("id", b"1004"),
        ("url", page.as_bytes()),
        ("url", good.as_bytes()),
        ("url", slow.as_bytes()),
        ("k", b"3"),
    ];
    let (s, _, b) = send(router, form("/api/search/batch", fields, None)).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let batches = v["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 5);
    assert!(error_of(&batches[0]).contains("did not arrive within 2 s"), "{v}");
    assert_eq!(batches[1]["results"].as_array().unwrap().len(), 3, "{v}");
    assert!(error_of(&batches[2]).contains("not an image"), "{v}");
    assert_eq!(batches[3]["results"][0]["id"], "1003", "{v}");
    assert!(error_of(&batches[4]).contains("did not arrive within 2 s"), "{v}");
}

#[tokio::test]
async fn fetched_photos_count_against_the_byte_budget() {
    // Before: fetched bytes counted against nothing (32 URLs of 20 MB: 158 MB -> 613 MB).
    let web = photo_server().await;
    let fetch = FetchOptions {
        max_bytes: 4 * 1024 * 1024,
        allow: vec![parse_allow("127.0.0.1").unwrap()],
        ..FetchOptions::default()
    };
    // Room for one 3 MB download (counted twice: the pieces and the joined copy), not two.
    let state = state_with(ServeOptions {
        fetch,
        memory_budget: 10 * 1024 * 1024,
        ..ServeOptions::default()
    });
    let big = format!("http://{web}/big.jpg");
    let fields: &[(&str, &[u8])] = &[("url", big.as_bytes()), ("url", big.as_bytes())];
    let (s, h, v) = call(&state, form("/api/search/batch", fields, None)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(h["retry-after"], "1");
    assert_eq!(state.budget.used(), 0, "what was held is given back");
    // One alone fits (and is then no JPEG, which is the photo's problem, not the budget's).
    let (s, _, v) = call(&state, form("/api/search/batch", &fields[..1], None)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!error_of(&v["batches"][0]).contains("busy"), "{v}");
    assert_eq!(state.budget.used(), 0);
}

#[tokio::test]
async fn downloads_stop_when_the_client_goes_away() {
    // A photo that takes 20 s to arrive; the server notes when its reader hangs up.
    struct Watch(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Watch {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = listener.local_addr().unwrap();
    let watched = gone.clone();
    let slow = Router::new().route(
        "/slow-stream.jpg",
        get(move || {
            let watch = Watch(watched.clone());
            async move {
                let chunks = futures_util::stream::unfold((watch, 0), |(watch, n)| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    (n < 200).then(|| {
                        (Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 16])), (watch, n + 1))
                    })
                });
                ([(header::CONTENT_TYPE, "image/jpeg")], Body::from_stream(chunks))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, slow).await.unwrap() });
    let fetch = FetchOptions {
        timeout: std::time::Duration::from_secs(60),
        allow: vec![parse_allow("127.0.0.1").unwrap()],
        ..FetchOptions::default()
    };
    let opts = ServeOptions { fetch, ..ServeOptions::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = state_with(opts.clone());
    tokio::spawn(async move {
        serve_on(listener, state, &opts, std::future::pending()).await.unwrap();
    });
    let url = format!("http://{web}/slow-stream.jpg");
    let (head, body) = form("/api/search/batch", &[("url", url.as_bytes())], None).into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /api/search/batch HTTP/1.1\r\nHost: t\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        head.headers["content-type"].to_str().unwrap(),
        body.len()
    );
    use tokio::io::AsyncWriteExt;
    client.write_all(request.as_bytes()).await.unwrap();
    client.write_all(&body).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!gone.load(std::sync::atomic::Ordering::SeqCst), "the download is under way");
    // The shopper leaves: the download is dropped with the request, long before its end.
    drop(client);
    let mut stopped = false;
    for _ in 0..50 {
        if gone.load(std::sync::atomic::Ordering::SeqCst) {
            stopped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(stopped, "the download went on after the client left");
}
