//! Router-level tests: every endpoint and every bad-input case, through `oneshot`.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::embed::BackendKind;
use crate::ingest::{IndexOptions, index_catalog};
use crate::store::{Change, ItemRecord, LmdbStore, Store};

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample-catalog")
}

/// A 24-photo catalogue (ids 1000..1023 of the sample) indexed once, plus one record
/// whose path tries to leave the catalogue.
fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<(tempfile::TempDir, Arc<Engine>)> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let cat = dir.path().join("cat");
            std::fs::create_dir_all(&cat).unwrap();
            let csv = std::fs::read_to_string(sample().join("styles.csv")).unwrap();
            let mut lines = csv.lines();
            let mut out = format!("{}\n", lines.next().unwrap());
            for line in lines.take(24) {
                let id = line.split(',').next().unwrap();
                std::fs::copy(
                    sample().join(format!("images/{id}.jpg")),
                    cat.join(format!("{id}.jpg")),
                )
                .unwrap();
                out.push_str(line);
                out.push('\n');
            }
            std::fs::write(cat.join("styles.csv"), out).unwrap();
            let idx = dir.path().join("idx");
            index_catalog(&cat, &idx, &IndexOptions::default()).unwrap();
            {
                let store = LmdbStore::open(&idx).unwrap();
                let (_, v) = store.get("1000").unwrap().unwrap();
                let record = ItemRecord {
                    path: "../secret.jpg".into(),
                    hash: "x".into(),
                    ..Default::default()
                };
                store.apply(None, &[Change::Put { id: "evil".into(), record, vector: v }]).unwrap();
            }
            std::fs::write(
                dir.path().join("secret.jpg"),
                std::fs::read(sample().join("images/1000.jpg")).unwrap(),
            )
            .unwrap();
            let engine = Arc::new(Engine::open(&idx, BackendKind::Auto).unwrap());
            (dir, engine)
        })
        .1
        .clone()
}

fn state_with(opts: ServeOptions) -> Arc<AppState> {
    Arc::new(AppState::new(engine(), &opts))
}

fn router() -> Router {
    app(state_with(ServeOptions::default()))
}

async fn send(router: Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let res = router.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

async fn get_json(uri: &str) -> (StatusCode, Value) {
    let (s, _, b) = send(router(), Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

const BOUNDARY: &str = "lookalike-test-boundary";

fn multipart(fields: &[(&str, &[u8])]) -> Request<Body> {
    let mut body = Vec::new();
    for (name, data) in fields {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        if *name == "image" {
            body.extend_from_slice(
                b"Content-Disposition: form-data; name=\"image\"; filename=\"q.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n",
            );
        } else {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Request::post("/api/search")
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(body))
        .unwrap()
}

fn photo(id: &str) -> Vec<u8> {
    std::fs::read(sample().join(format!("images/{id}.jpg"))).unwrap()
}

async fn search(router: Router, fields: &[(&str, &[u8])]) -> (StatusCode, Value) {
    let (s, _, b) = send(router, multipart(fields)).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn error_of(v: &Value) -> String {
    v["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn page_assets_and_health() {
    let (s, h, b) = send(router(), Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(&b).contains("/assets/app.js"));
    for (file, mime) in
        [("app.js", "text/javascript"), ("crop.js", "text/javascript"), ("style.css", "text/css")]
    {
        let (s, h, b) =
            send(router(), Request::get(format!("/assets/{file}")).body(Body::empty()).unwrap())
                .await;
        assert_eq!(s, StatusCode::OK, "{file}");
        assert!(h["content-type"].to_str().unwrap().starts_with(mime));
        assert!(!b.is_empty());
    }
    let (s, _, b) =
        send(router(), Request::get("/assets/../../Cargo.toml").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(serde_json::from_slice::<Value>(&b).unwrap()["error"].is_string());
    let (s, _, b) = send(router(), Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((s, b.as_slice()), (StatusCode::OK, b"ok".as_slice()));
}

#[tokio::test]
async fn search_by_photo_finds_it_first() {
    let (s, v) =
        search(router(), &[("image", &photo("1003")), ("k", b"3"), ("resize", b"pad")]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["id"], "1003");
    assert!(results[0]["score"].as_f64().unwrap() > 0.999);
    assert_eq!(results[0]["image"], "/images/1003");
    assert_eq!(results[0]["thumbnail"], "/thumbs/1003");
    assert_eq!(results[0]["metadata"]["articleType"], "Trousers");
    assert!(v["took_ms"].as_f64().unwrap() > 0.0);
    // By default a snapshot is centre-cropped, unlike the padded catalogue: still first.
    let (_, v) = search(router(), &[("image", &photo("1003"))]).await;
    assert_eq!(v["results"].as_array().unwrap().len(), 5, "k defaults to 5");
    assert_eq!(v["results"][0]["id"], "1003");
}

#[tokio::test]
async fn search_with_filter_and_crop() {
    let (s, v) = search(
        router(),
        &[("image", &photo("1003")), ("k", b"4"), ("filter", b"articleType=Tshirts")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let results = v["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| r["metadata"]["articleType"] == "Tshirts"));
    let (s, v) = search(router(), &[("image", &photo("1003")), ("crop", b"10,10,100,100")]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn search_bad_input_gets_a_named_4xx() {
    let img = photo("1000");
    type Case<'a> = (Vec<(&'a str, &'a [u8])>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("k", b"5")], StatusCode::BAD_REQUEST, "missing the 'image' field"),
        (vec![("image", b"")], StatusCode::BAD_REQUEST, "empty"),
        (
            vec![("image", b"this is text, not a photo")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not an image",
        ),
        (vec![("image", &img[..img.len() / 3])], StatusCode::BAD_REQUEST, "corrupt or truncated"),
        (vec![("image", &img), ("k", b"0")], StatusCode::BAD_REQUEST, "k must be"),
        (vec![("image", &img), ("k", b"51")], StatusCode::BAD_REQUEST, "k must be"),
        (vec![("image", &img), ("k", b"five")], StatusCode::BAD_REQUEST, "k must be"),
        (
            vec![("image", &img), ("filter", b"colour=red")],
            StatusCode::BAD_REQUEST,
            "unknown filter column 'colour'",
        ),
        (vec![("image", &img), ("filter", b"oops")], StatusCode::BAD_REQUEST, "invalid filter"),
        (vec![("image", &img), ("crop", b"1,2")], StatusCode::BAD_REQUEST, "crop"),
        (vec![("image", &img), ("crop", b"5000,0,10,10")], StatusCode::BAD_REQUEST, "outside"),
        (
            vec![("image", &img), ("colour", b"red")],
            StatusCode::BAD_REQUEST,
            "unknown form field 'colour'",
        ),
        (
            vec![("image", &img), ("resize", b"stretch")],
            StatusCode::BAD_REQUEST,
            "unknown resize mode",
        ),
    ];
    for (fields, status, msg) in cases {
        let (s, v) = search(router(), &fields).await;
        assert_eq!(s, status, "{msg}: {v}");
        assert!(error_of(&v).contains(msg), "expected '{msg}' in {v}");
    }
    let (s, _, b) =
        send(router(), Request::post("/api/search").body(Body::from("x")).unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(serde_json::from_slice::<Value>(&b).unwrap()["error"].is_string());
}

#[tokio::test]
async fn uploads_over_the_limit_get_413() {
    let small = app(state_with(ServeOptions { max_upload: 2000, ..ServeOptions::default() }));
    let big = vec![0u8; 200_000];
    let (s, v) = search(small.clone(), &[("image", &big)]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(error_of(&v).contains("limit"), "{v}");
    let (s, v) = search(small, &[("image", &photo("1000"))]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
}

#[tokio::test]
async fn a_full_server_answers_busy() {
    let state = state_with(ServeOptions { max_inflight: 1, ..ServeOptions::default() });
    let held = state.slots.clone().try_acquire_owned().unwrap();
    let (s, v) = search(app(state.clone()), &[("image", &photo("1000"))]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error_of(&v).contains("busy"));
    drop(held);
    let (s, _) = search(app(state), &[("image", &photo("1000"))]).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn items_similar_and_listing() {
    let (s, v) = get_json("/api/items/1001").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["id"], "1001");
    assert_eq!(v["metadata"]["articleType"], "Tshirts");
    let (s, v) = get_json("/api/items/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(error_of(&v).contains("unknown id 'nope'"));

    let (s, v) = get_json("/api/items/1001/similar?k=3").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|h| h["id"] != "1001"));
    let (s, v) = get_json("/api/items/1001/similar?k=5&filter=articleType%3DTshirts").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["results"].as_array().unwrap().iter().all(|h| h["metadata"]["articleType"] == "Tshirts")
    );
    assert_eq!(get_json("/api/items/nope/similar").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get_json("/api/items/1001/similar?k=100").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(get_json("/api/items/1001/similar?filter=x%3Dy").await.0, StatusCode::BAD_REQUEST);

    let (s, v) = get_json("/api/items?page=2&per_page=10").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["total"].as_u64(), v["page"].as_u64(), v["per_page"].as_u64()),
        (Some(25), Some(2), Some(10))
    );
    assert_eq!(v["items"].as_array().unwrap().len(), 10);
    let (_, v) = get_json("/api/items?page=3&per_page=10").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    let (_, v) = get_json("/api/items?filter=articleType%3DTshirts").await;
    let n = v["total"].as_u64().unwrap();
    assert!(n > 0 && n < 25);
    assert!(
        v["items"].as_array().unwrap().iter().all(|i| i["metadata"]["articleType"] == "Tshirts")
    );
    for bad in [
        "/api/items?per_page=0",
        "/api/items?per_page=101",
        "/api/items?page=x",
        "/api/items?sort=id",
    ] {
        let (s, v) = get_json(bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert!(!error_of(&v).is_empty());
    }
}

#[tokio::test]
async fn facets_and_stats_describe_the_catalogue() {
    let (s, v) = get_json("/api/facets").await;
    assert_eq!(s, StatusCode::OK);
    let cols: Vec<&str> =
        v["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(cols.contains(&"articleType"), "{cols:?}");
    assert!(!cols.contains(&"productDisplayName"), "one value per item is no facet");
    let (s, v) = get_json("/api/stats").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["count"], 25);
    assert_eq!(v["dimension"], 1280);
    let at = v["columns"].as_array().unwrap().iter().find(|c| c["name"] == "articleType").unwrap();
    let total: u64 =
        at["values"].as_array().unwrap().iter().map(|x| x["count"].as_u64().unwrap()).sum();
    assert_eq!(total + at["missing"].as_u64().unwrap(), 25);
}

#[tokio::test]
async fn photos_and_thumbnails_with_etags() {
    let (s, h, b) = send(router(), Request::get("/images/1002").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(b, photo("1002"));
    let etag = h["etag"].to_str().unwrap().to_string();
    let req =
        Request::get("/images/1002").header("if-none-match", &etag).body(Body::empty()).unwrap();
    assert_eq!(send(router(), req).await.0, StatusCode::NOT_MODIFIED);

    let (s, h, b) = send(router(), Request::get("/thumbs/1002").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "image/jpeg");
    let thumb = image::load_from_memory(&b).unwrap();
    assert!(thumb.width().max(thumb.height()) <= thumbs::SIDE);
    let etag = h["etag"].to_str().unwrap().to_string();
    let req =
        Request::get("/thumbs/1002").header("if-none-match", &etag).body(Body::empty()).unwrap();
    assert_eq!(send(router(), req).await.0, StatusCode::NOT_MODIFIED);

    assert_eq!(
        send(router(), Request::get("/images/nope").body(Body::empty()).unwrap()).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn no_request_reaches_a_file_outside_the_catalogue() {
    // An indexed record pointing outside the catalogue is refused, though the file exists.
    let (s, _, _) = send(router(), Request::get("/images/evil").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = send(router(), Request::get("/thumbs/evil").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for uri in ["/images/..%2F..%2Fetc%2Fpasswd", "/images/%2Fetc%2Fpasswd", "/thumbs/..%2Fsecret"]
    {
        let (s, _, _) = send(router(), Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn openapi_document_lists_the_api() {
    let (s, v) = get_json("/api/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/api/search",
        "/api/items",
        "/api/items/{id}",
        "/api/items/{id}/similar",
        "/api/facets",
        "/api/stats",
    ] {
        assert!(v["paths"][path].is_object(), "{path} missing");
    }
    assert!(v["components"]["schemas"]["SearchOut"].is_object());
}
