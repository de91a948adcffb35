//! Catalogues in object storage, against a real S3-compatible server (moto's, the one
//! the test run shares; each test in buckets of its own): `lookalike index
//! s3://BUCKET/PREFIX` gives the index the same folder gives, re-runs are incremental,
//! `serve` serves the photos from the bucket, and a store that is down or a bad address
//! is a clear error that leaves the index as it was.

use crate::common::s3::S3Server;
use crate::common::*;
use serde_json::Value;

/// The first `n` sample photos and their styles.csv in a folder and, under `prefix`, in
/// a new bucket of the server (photos in a sub-folder, as in the folder).
fn upload(
    s3: &S3Server,
    bucket: &str,
    dir: &std::path::Path,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let ids = small_catalog(dir, n);
    s3.create_bucket(bucket);
    s3.put(bucket, &format!("{prefix}/styles.csv"), std::fs::read(dir.join("styles.csv")).unwrap());
    for id in &ids {
        let bytes = std::fs::read(dir.join(format!("images/{id}.jpg"))).unwrap();
        s3.put(bucket, &format!("{prefix}/images/{id}.jpg"), bytes);
    }
    // Beside the catalogue, not in it.
    s3.put(
        bucket,
        "elsewhere/images/9999.jpg",
        std::fs::read(dir.join(format!("images/{}.jpg", ids[0]))).unwrap(),
    );
    ids
}

fn run_json(args: &[&str], env: &[(&str, String)]) -> Value {
    let out = lookalike_env(args, env);
    assert!(
        out.status.success(),
        "lookalike {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn search(index: &str, photo: &str) -> Vec<(String, f64)> {
    // Similarity alone (no category blend): scores are cosines.
    let args = ["search", photo, "--index", index, "-k", "5", "--category", "0", "--json"];
    let v: Value = serde_json::from_str(&ok(&args)).unwrap();
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["score"].as_f64().unwrap()))
        .collect()
}

#[test]
fn a_catalogue_in_a_bucket_indexes_as_the_folder_does_and_refreshes_incrementally() {
    const BUCKET: &str = "shop-photos";
    require_ort();
    let s3 = S3Server::shared();
    let env = s3.env();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    let ids = upload(s3, BUCKET, &cat, "2026/cat", 8);
    let from_bucket = dir.path().join("idx-s3");
    let from_folder = dir.path().join("idx-folder");
    let address = format!("s3://{BUCKET}/2026/cat/");

    let report = run_json(&["index", &address, "--index", p(&from_bucket), "--json"], &env);
    assert_eq!(report["photos_found"], 8, "{report}");
    assert_eq!(report["added"], 8, "{report}");
    assert_eq!(report["metadata_file"], format!("s3://{BUCKET}/2026/cat/styles.csv"), "{report}");
    assert_eq!(report["photos_without_metadata"], 0, "{report}");
    ok(&["index", p(&cat), "--index", p(&from_folder), "--json"]);

    // The same items, metadata and vectors: every search answers alike.
    let info = run_json(&["info", "--index", p(&from_bucket), "--json"], &env);
    assert_eq!(info["catalog"], format!("s3://{BUCKET}/2026/cat"), "{info}");
    assert_eq!(info["count"], 8, "{info}");
    let folder_info: Value =
        serde_json::from_str(&ok(&["info", "--index", p(&from_folder), "--json"])).unwrap();
    assert_eq!(info["columns"], folder_info["columns"]);
    for id in &ids[..3] {
        let photo = cat.join(format!("images/{id}.jpg"));
        let a = search(p(&from_bucket), p(&photo));
        assert_eq!(a, search(p(&from_folder), p(&photo)), "query {id}");
        assert_eq!(a[0].0, *id);
    }

    // A re-run reads nothing new; a changed object is embedded again, a deleted one leaves.
    let again = run_json(&["index", &address, "--index", p(&from_bucket), "--json"], &env);
    assert_eq!(
        (again["unchanged"].as_u64(), again["added"].as_u64()),
        (Some(8), Some(0)),
        "{again}"
    );
    let query = sample().join("images/1100.jpg");
    let score_of =
        |hits: &[(String, f64)], id: &str| hits.iter().find(|h| h.0 == id).map_or(-1.0, |h| h.1);
    let before = score_of(&search(p(&from_bucket), p(&query)), &ids[1]);
    let other = std::fs::read(&query).unwrap();
    s3.put(BUCKET, &format!("2026/cat/images/{}.jpg", ids[1]), other);
    s3.delete(BUCKET, &format!("2026/cat/images/{}.jpg", ids[2]));
    let changed = run_json(&["index", &address, "--index", p(&from_bucket), "--json"], &env);
    assert_eq!(changed["reembedded"], 1, "{changed}");
    assert_eq!(changed["removed"], 1, "{changed}");
    assert_eq!(changed["unchanged"], 6, "{changed}");
    assert_eq!(changed["total_items"], 7, "{changed}");
    let moved = search(p(&from_bucket), p(&query));
    assert_eq!(moved[0].0, ids[1], "the replaced photo is searched by its new content");
    assert!(moved[0].1 > before + 0.2 && moved[0].1 > moved[1].1 + 0.1, "{before} {moved:?}");
}

#[test]
fn the_server_serves_photos_from_the_bucket_and_names_a_store_that_is_down() {
    const BUCKET: &str = "served-photos";
    require_ort();
    let s3 = S3Server::shared();
    // The store, on an endpoint of this test's own that it takes down below (the server
    // itself stays up for the other tests).
    let mut store = s3.relay();
    let env = store.env();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    let ids = upload(s3, BUCKET, &cat, "cat", 4);
    let idx = dir.path().join("idx");
    run_json(&["index", &format!("s3://{BUCKET}/cat"), "--index", p(&idx), "--json"], &env);

    let port = free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lookalike"));
    cmd.args(["serve", "--index", p(&idx), "--addr", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut server = cmd.spawn().unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed().as_secs() < 60, "serve did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let get = |path: String| {
        rt.block_on(async {
            let res = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await.unwrap();
            let status = res.status().as_u16();
            let ctype = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
            (status, ctype, res.bytes().await.unwrap().to_vec())
        })
    };
    let (status, ctype, body) = get(format!("/images/{}", ids[0]));
    assert_eq!(status, 200);
    assert_eq!(ctype.as_deref(), Some("image/jpeg"));
    assert_eq!(body, std::fs::read(cat.join(format!("images/{}.jpg", ids[0]))).unwrap());
    let (status, ctype, thumb) = get(format!("/thumbs/{}", ids[1]));
    assert_eq!((status, ctype.as_deref()), (200, Some("image/jpeg")));
    assert!(image::load_from_memory(&thumb).is_ok());
    let (status, _, _) = get("/images/nope".into());
    assert_eq!(status, 404);

    // The store goes away: a photo is a 502 with a message, not a hang or a crash, and
    // searching (in the index) goes on.
    store.stop();
    let t = std::time::Instant::now();
    let (status, ctype, body) = get(format!("/images/{}", ids[2]));
    assert_eq!((status, ctype.as_deref()), (502, Some("application/json")));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("photo store"), "{v}");
    assert!(t.elapsed().as_secs() < 60, "bounded by the client's timeouts");
    let (status, _, body) = get(format!("/api/items/{}/similar?k=2", ids[0]));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_bad_address_or_a_store_that_is_down_is_a_clear_error_and_leaves_the_index_alone() {
    require_ort();
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    small_catalog(&dir.path().join("cat"), 3);
    ok(&["index", p(&dir.path().join("cat")), "--index", p(&idx), "--json"]);
    let before = ok(&["info", "--index", p(&idx), "--json"]);

    let out = lookalike(&["index", "s3://Not_A_Bucket/x", "--index", p(&idx)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s3://Not_A_Bucket/x") && err.contains("bucket name"), "{err}");

    // Nothing listens at the endpoint: the run fails within the client's bounds, names
    // the address, and the index keeps every item.
    let down = vec![
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", free_port())),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let t = std::time::Instant::now();
    let out = lookalike_env(&["index", "s3://shop-photos/cat", "--index", p(&idx)], &down);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the object store for s3://shop-photos/cat"), "{err}");
    assert!(t.elapsed().as_secs() < 90, "took {:?}", t.elapsed());
    assert_eq!(ok(&["info", "--index", p(&idx), "--json"]), before);

    // A bucket that does not exist on a running store, and a prefix with nothing under
    // it (a typo must not empty the index).
    let s3 = S3Server::shared();
    let out = lookalike_env(&["index", "s3://no-such-bucket/cat", "--index", p(&idx)], &s3.env());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s3://no-such-bucket/cat") && err.contains("no bucket named"), "{err}");
    s3.create_bucket("typo-photos");
    s3.put("typo-photos", "cat/1.jpg", std::fs::read(sample().join("images/1000.jpg")).unwrap());
    let out = lookalike_env(&["index", "s3://typo-photos/cta", "--index", p(&idx)], &s3.env());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing is stored under s3://typo-photos/cta"), "{err}");
    assert_eq!(ok(&["info", "--index", p(&idx), "--json"]), before);
}
