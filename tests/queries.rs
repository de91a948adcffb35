//! `lookalike search` by URL (fetched from a real web server on loopback) and by liked and
//! disliked examples; the "no close match" call in its JSON.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::OnceLock;

use crate::common::fixtures::run_dir;
use crate::common::*;
use serde_json::Value;

/// Twelve sample photos indexed once per run for this file's tests, which only read it,
/// in the run's folder.
fn index() -> &'static str {
    static INDEX: OnceLock<String> = OnceLock::new();
    INDEX.get_or_init(|| {
        require_ort();
        let dir = run_dir().join("queries");
        // What a panicked earlier attempt of this run left, so that this one starts anew.
        let _ = std::fs::remove_dir_all(&dir);
        small_catalog(&dir.join("cat"), 12);
        ok(&["index", p(&dir.join("cat")), "--index", p(&dir.join("idx")), "--json"]);
        dir.join("idx").to_string_lossy().into_owned()
    })
}

/// A web server on 127.0.0.1 answering `/photo.jpg` with a sample photo and anything else
/// with a 404 page; returns its address.
fn web_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let photo = std::fs::read(sample().join("images/1003.jpg")).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 4096];
            let n = stream.read(&mut head).unwrap_or(0);
            let request = String::from_utf8_lossy(&head[..n]);
            let (status, kind, body) = if request.starts_with("GET /photo.jpg ") {
                ("200 OK", "image/jpeg", photo.clone())
            } else {
                ("404 Not Found", "text/html", b"<p>no</p>".to_vec())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    addr
}

fn ids(v: &Value) -> Vec<String> {
    v["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_photo_by_url_finds_what_the_file_finds() {
    let web = web_server();
    let url = format!("http://{web}/photo.jpg");
    let file = sample().join("images/1003.jpg");
    let by_file = json_lines(&ok(&["search", "--index", index(), "--json", p(&file)]));
    let by_url = json_lines(&ok(&[
        "search",
        "--index",
        index(),
        "--json",
        "--fetch-allow",
        "127.0.0.1",
        &url,
    ]));
    assert_eq!(ids(&by_url[0]), ids(&by_file[0]));
    assert_eq!(by_url[0]["query"], url.as_str());
    assert!(by_url[0]["no_close_match"].is_boolean(), "{}", by_url[0]);
}

#[test]
fn a_url_into_the_machine_or_its_network_is_refused() {
    let web = web_server();
    for (url, says) in [
        (format!("http://{web}/photo.jpg"), "loopback address; fetching from it is refused"),
        ("http://169.254.169.254/latest/meta-data/".to_string(), "link-local"),
        ("http://192.168.1.1/x.jpg".to_string(), "private"),
    ] {
        let out = lookalike(&["search", "--index", index(), &url]);
        assert_eq!(out.status.code(), Some(2), "{url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{url}: {err}");
    }
    // Allowed, but not a photo there.
    let out = lookalike(&[
        "search",
        "--index",
        index(),
        "--fetch-allow",
        "127.0.0.0/8",
        &format!("http://{web}/x.jpg"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("answered HTTP 404"));
    let out = lookalike(&["search", "--index", index(), "--fetch-allow", "intranet", "x.jpg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an address or network"));
}

#[test]
fn likes_and_dislikes_recommend_without_the_examples() {
    let one = json_lines(&ok(&["search", "--index", index(), "--json", "--like", "1003"]));
    let similar =
        json_lines(&ok(&["search", "--index", index(), "--json", "--similar-to", "1003"]));
    assert_eq!(ids(&one[0]), ids(&similar[0]), "one liked item finds what similar-to finds");
    let unliked = ids(&one[0])[0].clone();
    let both = json_lines(&ok(&[
        "search",
        "--index",
        index(),
        "--json",
        "--like",
        "1003",
        "--unlike",
        &unliked,
    ]));
    let got = ids(&both[0]);
    assert_eq!(got.len(), 5);
    assert!(!got.contains(&unliked) && !got.contains(&"1003".to_string()), "{got:?}");
    // A photo can be liked too (a file that is not an item id).
    let photo = sample().join("images/1005.jpg");
    let liked_photo =
        json_lines(&ok(&["search", "--index", index(), "--json", "--like", p(&photo)]));
    assert_eq!(ids(&liked_photo[0]).len(), 5);
    // --similar-to's item counts as liked: the same as two --like.
    let two = json_lines(&ok(&[
        "search",
        "--index",
        index(),
        "--json",
        "--like",
        "1003",
        "--like",
        "1004",
    ]));
    let with_similar = json_lines(&ok(&[
        "search",
        "--index",
        index(),
        "--json",
        "--similar-to",
        "1004",
        "--like",
        "1003",
    ]));
    assert_eq!(ids(&two[0]), ids(&with_similar[0]));
    let out = lookalike(&["search", "--index", index(), "--like", "no-such-item"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown id 'no-such-item'"));
    let out = lookalike(&["search", "--index", index(), "--unlike", "1003"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least one liked"));
}

#[test]
fn a_photo_of_nothing_in_the_catalogue_is_no_close_match() {
    let dir = tempfile::tempdir().unwrap();
    // A flat grey picture: nothing in it is a product.
    let grey = dir.path().join("grey.png");
    image::RgbImage::from_pixel(200, 200, image::Rgb([128, 128, 128])).save(&grey).unwrap();
    let item = sample().join("images/1003.jpg");
    let out = json_lines(&ok(&["search", "--index", index(), "--json", p(&item), p(&grey)]));
    assert_eq!(out[0]["no_close_match"], false, "{}", out[0]);
    assert_eq!(out[1]["no_close_match"], true, "{}", out[1]);
    assert_eq!(ids(&out[1]).len(), 5, "the nearest are still given");
    let table = ok(&["search", "--index", index(), p(&grey)]);
    assert!(table.contains("no close match in the catalogue; here are the nearest"), "{table}");
}
