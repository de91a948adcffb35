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

/// The first `n` photos of the sample (ids from 1000) as a catalogue in `dir/cat`,
/// indexed into `dir/idx`; returns the index folder.
fn build_index(dir: &Path, n: usize) -> PathBuf {
    let cat = dir.join("cat");
    std::fs::create_dir_all(&cat).unwrap();
    let csv = std::fs::read_to_string(sample().join("styles.csv")).unwrap();
    let mut lines = csv.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines.take(n) {
        let id = line.split(',').next().unwrap();
        std::fs::copy(sample().join(format!("images/{id}.jpg")), cat.join(format!("{id}.jpg")))
            .unwrap();
        out.push_str(line);
        out.push('\n');
    }
    std::fs::write(cat.join("styles.csv"), out).unwrap();
    let idx = dir.join("idx");
    index_catalog(&cat, &idx, &IndexOptions::default()).unwrap();
    idx
}

/// A 24-photo catalogue (ids 1000..1023 of the sample) indexed once, plus one record
/// whose path tries to leave the catalogue. Shared, so never written to.
fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<(tempfile::TempDir, Arc<Engine>)> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let idx = build_index(dir.path(), 24);
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
    form("/api/search", fields, Some("q.jpg"))
}

/// A multipart POST to `uri`; the `image` field carries `file_name` if given.
fn form(uri: &str, fields: &[(&str, &[u8])], file_name: Option<&str>) -> Request<Body> {
    let mut body = Vec::new();
    for (name, data) in fields {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        if *name == "image" {
            let file = file_name.map(|f| format!("; filename=\"{f}\"")).unwrap_or_default();
            body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"image\"{file}\r\nContent-Type: image/jpeg\r\n\r\n"
                )
                .as_bytes(),
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
    Request::post(uri)
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
    // By similarity alone (category 0) the photo itself scores 1.
    let fields: &[(&str, &[u8])] =
        &[("image", &photo("1003")), ("k", b"3"), ("resize", b"pad"), ("category", b"0")];
    let (s, v) = search(router(), fields).await;
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
async fn search_says_what_the_photo_looks_like_and_where_the_garment_is() {
    // A trouser snapshot (sample item 1003): the model names its kind, and the search
    // ranks by it unless told not to.
    let (s, v) = search(router(), &[("image", &photo("1003")), ("k", b"5")]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let predicted = v["predicted"].as_array().unwrap();
    assert_eq!(predicted[0]["column"], "articleType", "{v}");
    assert_eq!(predicted[0]["value"], "Trousers", "{v}");
    assert_eq!(predicted[0]["source"], "both");
    let p = predicted[0]["probability"].as_f64().unwrap();
    assert!(p > 0.5 && p <= 1.0, "{v}");
    // The garment square, when found, lies inside the photo the server decoded.
    let (w, h) = image::load_from_memory(&photo("1003")).unwrap().to_rgb8().dimensions();
    if let Some(g) = v.get("garment_box") {
        let (x, y, gw, gh) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + gw <= u64::from(w) && y + gh <= u64::from(h) && gw == gh, "{g}");
    }
    let (_, off) = search(router(), &[("image", &photo("1003")), ("locate", b"off")]).await;
    assert!(off.get("garment_box").is_none(), "{off}");
    // The stats name what the model predicts.
    let (_, stats) = get_json("/api/stats").await;
    assert_eq!(stats["predicts"], serde_json::json!(["articleType"]));
    // "More like this" says what the item looks like too.
    let (s, v) = get_json("/api/items/1003/similar?k=3&category=0.5").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["predicted"][0]["value"], "Trousers", "{v}");
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
            vec![("image", &img), ("color", b"red")],
            StatusCode::BAD_REQUEST,
            "unknown form field 'color'",
        ),
        (vec![("image", &img), ("colour", b"red")], StatusCode::BAD_REQUEST, "colour must be"),
        (vec![("image", &img), ("colour", b"9")], StatusCode::BAD_REQUEST, "colour must be"),
        (vec![("image", &img), ("min_score", b"2")], StatusCode::BAD_REQUEST, "min_score must"),
        (vec![("image", &img), ("collapse", b"x")], StatusCode::BAD_REQUEST, "collapse must"),
        (
            vec![("image", &img), ("resize", b"stretch")],
            StatusCode::BAD_REQUEST,
            "unknown resize mode",
        ),
        (vec![("image", &img), ("category", b"1.5")], StatusCode::BAD_REQUEST, "category must"),
        (vec![("image", &img), ("category", b"much")], StatusCode::BAD_REQUEST, "category must"),
        (vec![("image", &img), ("locate", b"maybe")], StatusCode::BAD_REQUEST, "locate must"),
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
    for bad in ["colour=-1", "colour=x", "min_score=3", "collapse=1.5"] {
        let (s, v) = get_json(&format!("/api/items/1001/similar?{bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    // Colour weight 0 ranks by shape alone; a high one by colour: other rankings.
    let (_, shape) = get_json("/api/items/1001/similar?k=10&colour=0").await;
    let (_, colour) = get_json("/api/items/1001/similar?k=10&colour=4").await;
    let ids = |v: &Value| -> Vec<String> {
        v["results"].as_array().unwrap().iter().map(|h| h["id"].to_string()).collect()
    };
    assert_eq!(ids(&shape).len(), 10);
    assert_ne!(ids(&shape), ids(&colour));
    // A floor no other item reaches, then near-duplicate collapsing (nothing collapses
    // at cosine 1 among distinct photos).
    let (s, v) = get_json("/api/items/1001/similar?k=5&min_score=0.9999").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&v).len(), 0, "{v}");
    let (_, v) = get_json("/api/items/1001/similar?k=5&collapse=1").await;
    assert_eq!(ids(&v).len(), 5);

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
    assert_eq!(v["dimension"], 256 + crate::colour::BINS);
    assert_eq!(v["colour_weight"], crate::ingest::DEFAULT_COLOUR_WEIGHT);
    // `index` partitioned its 24 photos; the item written to the store behind its back
    // has no cell.
    assert_eq!(v["cells"], crate::index::cells_for(24));
    assert_eq!(v["unplaced"], 1);
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
    // The write endpoints sit beside the reads, behind the bearer token.
    assert!(v["paths"]["/api/items"]["get"].is_object());
    assert!(v["paths"]["/api/items/{id}"]["get"].is_object());
    for (path, method) in [("/api/items", "post"), ("/api/items/{id}", "delete")] {
        let op = &v["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(op["security"][0]["admin_token"].is_array(), "{method} {path}: {op}");
        assert!(op["responses"]["401"].is_object() && op["responses"]["403"].is_object());
    }
    assert_eq!(v["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer");
    assert!(v["components"]["schemas"]["WriteOut"].is_object());
}

// ---- Live updates: each test writes to an index of its own. ----

const TOKEN: &str = "s3cret-token";

/// A fresh 8-photo index (ids 1000..1007) and a server on it with `token` as admin token.
fn writable(token: Option<&str>) -> (tempfile::TempDir, Arc<AppState>) {
    let dir = tempfile::tempdir().unwrap();
    let idx = build_index(dir.path(), 8);
    let engine = Arc::new(Engine::open(&idx, BackendKind::Auto).unwrap());
    let opts = ServeOptions { admin_token: token.map(str::to_string), ..ServeOptions::default() };
    (dir, Arc::new(AppState::new(engine, &opts)))
}

fn authed(mut req: Request<Body>, token: &str) -> Request<Body> {
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

async fn call(state: &Arc<AppState>, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let (s, h, b) = send(app(state.clone()), req).await;
    (s, h, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn get_on(state: &Arc<AppState>, uri: &str) -> (StatusCode, Value) {
    let (s, _, v) = call(state, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, v)
}

fn add(fields: &[(&str, &[u8])], file_name: Option<&str>) -> Request<Body> {
    authed(form("/api/items", fields, file_name), TOKEN)
}

fn delete(id: &str) -> Request<Body> {
    authed(Request::delete(format!("/api/items/{id}")).body(Body::empty()).unwrap(), TOKEN)
}

async fn search_on(state: &Arc<AppState>, photo: &[u8]) -> Vec<String> {
    let (s, v) =
        search(app(state.clone()), &[("image", photo), ("k", b"5"), ("resize", b"pad")]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().into()).collect()
}

fn added_photos(state: &AppState) -> usize {
    std::fs::read_dir(state.engine.dir().join(crate::engine::ADDED_PHOTOS_DIR))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn writes_need_a_configured_token() {
    let img = photo("1030");
    // No token configured: both write endpoints are off, whatever the request carries.
    let (_dir, off) = writable(None);
    for req in [add(&[("image", &img), ("id", b"x")], None), delete("1001")] {
        let (s, _, v) = call(&off, req).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        assert!(error_of(&v).contains("--admin-token or LOOKALIKE_ADMIN_TOKEN"), "{v}");
    }
    let blank = ServeOptions { admin_token: Some("  ".into()), ..ServeOptions::default() };
    let blank = Arc::new(AppState::new(off.engine.clone(), &blank));
    assert_eq!(call(&blank, delete("1001")).await.0, StatusCode::FORBIDDEN, "a blank token");

    // A token configured: a missing, wrong or non-bearer credential gets 401.
    let (_dir, on) = writable(Some(TOKEN));
    let bad_auth =
        [None, Some("Bearer wrong"), Some("Bearer "), Some(TOKEN), Some("Basic czNjcmV0")];
    for auth in bad_auth {
        for mut req in [form("/api/items", &[("image", &img), ("id", b"x")], None), {
            Request::delete("/api/items/1001").body(Body::empty()).unwrap()
        }] {
            if let Some(a) = auth {
                req.headers_mut().insert("authorization", a.parse().unwrap());
            }
            let (s, h, v) = call(&on, req).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{auth:?}: {v}");
            assert!(h["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
            assert!(!error_of(&v).is_empty());
        }
    }
    // Nothing was written by any refused request.
    for state in [&off, &on] {
        assert_eq!(get_on(state, "/api/stats").await.1["count"], 8);
        assert_eq!(get_on(state, "/api/items/1001").await.0, StatusCode::OK);
        assert_eq!(get_on(state, "/api/items/x").await.0, StatusCode::NOT_FOUND);
    }
    // The scheme is case-insensitive; the right token passes (and the id is unknown).
    let req = Request::delete("/api/items/nope")
        .header("authorization", format!("bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&on, req).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_added_item_is_found_at_once() {
    let (_dir, state) = writable(Some(TOKEN));
    let img = photo("1030");
    let meta = br#"{"articleType": "Jeans", "masterCategory": "Apparel"}"#;
    let (s, h, v) = call(
        &state,
        add(&[("image", &img), ("id", b"new 1"), ("metadata", meta), ("gender", b"Men")], None),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(h["location"], "/api/items/new%201");
    assert_eq!(v["added"], serde_json::json!(["new 1"]));
    assert_eq!(v["replaced"], serde_json::json!([]));
    assert_eq!(v["total_items"], 9);

    let (s, v) = get_on(&state, "/api/items/new%201").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["metadata"]["articleType"], "Jeans");
    assert_eq!(v["metadata"]["gender"], "Men");
    assert_eq!(v["image"], "/images/new%201");
    assert_eq!(search_on(&state, &img).await[0], "new 1");
    let (s, h, b) =
        send(app(state.clone()), Request::get("/images/new%201").body(Body::empty()).unwrap())
            .await;
    assert_eq!((s, h["content-type"].to_str().unwrap()), (StatusCode::OK, "image/jpeg"));
    assert_eq!(b, img);
    let (s, _, _) =
        send(app(state.clone()), Request::get("/thumbs/new%201").body(Body::empty()).unwrap())
            .await;
    assert_eq!(s, StatusCode::OK);
    // Facets and statistics follow the write.
    let (_, v) = get_on(&state, "/api/stats").await;
    assert_eq!(v["count"], 9);
    let at = v["columns"].as_array().unwrap().iter().find(|c| c["name"] == "articleType").unwrap();
    assert!(at["values"].as_array().unwrap().iter().any(|x| x["value"] == "Jeans"), "{at}");
    let (_, v) = get_on(&state, "/api/items?filter=articleType%3DJeans").await;
    assert_eq!(v["total"], 1);

    // The id defaults to the uploaded file's name; the same id again replaces (200).
    let other = photo("1031");
    let (s, _, v) = call(&state, add(&[("image", &other)], Some("shots/new 1.jpg"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["replaced"], serde_json::json!(["new 1"]));
    assert_eq!(v["total_items"], 9);
    assert_eq!(search_on(&state, &other).await[0], "new 1");
    assert!(get_on(&state, "/api/items/new%201").await.1["metadata"]["gender"].is_null());
    let (_, _, b) =
        send(app(state.clone()), Request::get("/images/new%201").body(Body::empty()).unwrap())
            .await;
    assert_eq!(b, other);
    assert_eq!(added_photos(&state), 1, "the replaced photo's file is gone");
    let (_, v) = get_on(&state, "/api/items?filter=articleType%3DJeans").await;
    assert_eq!(v["total"], 0);

    // Removing an added item removes its photo file too.
    assert_eq!(call(&state, delete("new%201")).await.0, StatusCode::OK);
    assert_eq!(added_photos(&state), 0);
}

#[tokio::test]
async fn bad_uploads_add_nothing() {
    let (_dir, state) = writable(Some(TOKEN));
    let img = photo("1030");
    type Case<'a> = (Vec<(&'a str, &'a [u8])>, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("image", b"this is text, not a photo"), ("id", b"t")], None, "not an image"),
        (vec![("image", &img[..img.len() / 3]), ("id", b"t")], None, "corrupt or truncated"),
        (vec![("image", b""), ("id", b"t")], None, "empty"),
        (vec![("id", b"t")], None, "missing the 'image' field"),
        (vec![("image", &img)], None, "missing the item id"),
        (vec![("image", &img), ("id", b"a/b")], None, "slash"),
        (
            vec![("image", &img), ("id", b"t"), ("colour", b"red")],
            None,
            "unknown form field 'colour'",
        ),
        (
            vec![("image", &img), ("id", b"t"), ("metadata", br#"{"colour": "red"}"#)],
            None,
            "unknown metadata column 'colour'",
        ),
        (vec![("image", &img), ("id", b"t"), ("metadata", b"[1, 2]")], None, "JSON object"),
        (
            vec![("image", &img), ("id", b"t"), ("metadata", br#"{"gender": null}"#)],
            None,
            "must be a string",
        ),
        (
            vec![("image", &img), ("gender", b"Men"), ("metadata", br#"{"gender": "Women"}"#)],
            Some("t.jpg"),
            "given twice",
        ),
        (vec![("image", &img), ("image", &img)], Some("t.jpg"), "only one 'image'"),
    ];
    for (fields, file_name, msg) in cases {
        let (s, _, v) = call(&state, add(&fields, file_name)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{msg}: {v}");
        assert!(error_of(&v).contains(msg), "expected '{msg}' in {v}");
    }
    let req = authed(Request::post("/api/items").body(Body::from("x")).unwrap(), TOKEN);
    assert_eq!(call(&state, req).await.0, StatusCode::BAD_REQUEST);
    // The upload limit of /api/search holds here too.
    let small = ServeOptions {
        max_upload: 2000,
        admin_token: Some(TOKEN.into()),
        ..ServeOptions::default()
    };
    let small = Arc::new(AppState::new(state.engine.clone(), &small));
    let (s, _, v) = call(&small, add(&[("image", &img), ("id", b"t")], None)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    assert_eq!(get_on(&state, "/api/stats").await.1["count"], 8);
    assert_eq!(get_on(&state, "/api/items/t").await.0, StatusCode::NOT_FOUND);
    assert_eq!(added_photos(&state), 0);
}

#[tokio::test]
async fn a_removed_item_is_gone_at_once() {
    let (_dir, state) = writable(Some(TOKEN));
    let img = photo("1003");
    assert_eq!(search_on(&state, &img).await[0], "1003");
    let (s, _, v) = call(&state, delete("1003")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["removed"], serde_json::json!(["1003"]));
    assert_eq!(v["total_items"], 7);
    assert_eq!(get_on(&state, "/api/items/1003").await.0, StatusCode::NOT_FOUND);
    assert!(!search_on(&state, &img).await.contains(&"1003".to_string()));
    assert_eq!(get_on(&state, "/api/items/1003/similar").await.0, StatusCode::NOT_FOUND);
    let (s, _, _) =
        send(app(state.clone()), Request::get("/images/1003").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = get_on(&state, "/api/stats").await;
    assert_eq!(v["count"], 7);
    let (_, v) = get_on(&state, "/api/items?per_page=100").await;
    assert_eq!(v["total"], 7);
    // The catalogue photo itself is left alone.
    assert!(state.catalog.as_ref().unwrap().join("1003.jpg").exists());

    for id in ["1003", "nope"] {
        let (s, _, v) = call(&state, delete(id)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert!(error_of(&v).contains(&format!("unknown id '{id}'")), "{v}");
    }
    assert_eq!(get_on(&state, "/api/stats").await.1["count"], 7);
}

#[tokio::test]
async fn trained_parameter_reorders_with_the_projection_and_is_checked() {
    // The shared index has no projection: asking for one is the caller's mistake.
    let (s, v) = get_json("/api/items/1001/similar?trained=0.5").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("lookalike train"), "{v}");
    let (s, _) = get_json("/api/items/1001/similar?trained=2").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(get_json("/api/stats").await.1["trained"], Value::Null);

    // A projection trained on this index's own vectors (labels: two halves of the ids).
    let dir = tempfile::tempdir().unwrap();
    let idx = build_index(dir.path(), 12);
    {
        let engine = Engine::open(&idx, BackendKind::Auto).unwrap();
        let snapshot = engine.index().compacted();
        let info = engine.info();
        let data = crate::projection::train::TrainData {
            vectors: (0..snapshot.len()).map(|r| snapshot.vector(r)).collect(),
            labels: (0..snapshot.len() as u32).map(|r| r % 2).collect(),
            classes: vec!["a".into(), "b".into()],
            input_dim: info.model.dim,
            label: "half".into(),
            model_hash: info.model_hash.clone(),
            holdout_excluded: true,
        };
        let cfg = crate::projection::train::TrainConfig {
            hidden: 0,
            dim: 16,
            epochs: 5,
            ..Default::default()
        };
        crate::projection::train::fit(&data, &cfg, &mut |_| {}).unwrap().save(&idx).unwrap();
    }
    let engine = Arc::new(Engine::open(&idx, BackendKind::Auto).unwrap());
    let state = Arc::new(AppState::new(engine, &ServeOptions::default()));
    let (s, stats) = get_on(&state, "/api/stats").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(stats["trained"]["label"], "half");
    assert_eq!(stats["trained"]["classes"], 2);
    let scores = |v: &Value| -> Vec<f64> {
        v["results"].as_array().unwrap().iter().map(|r| r["score"].as_f64().unwrap()).collect()
    };
    let (_, plain) = get_on(&state, "/api/items/1001/similar?k=8&trained=0").await;
    let (_, default) = get_on(&state, "/api/items/1001/similar?k=8").await;
    let (_, full) = get_on(&state, "/api/items/1001/similar?k=8&trained=1").await;
    // The default re-orders catalogue queries with the projection; 0 turns it off.
    assert_ne!(scores(&plain), scores(&default));
    assert_ne!(scores(&default), scores(&full));
    for v in [&plain, &default, &full] {
        let s = scores(v);
        assert_eq!(s.len(), 8);
        assert!(s.windows(2).all(|w| w[0] >= w[1]), "{s:?}");
    }
    // The same candidates, differently ordered (the re-rank depth covers the index).
    let ids = |v: &Value| -> std::collections::BTreeSet<String> {
        v["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().into()).collect()
    };
    let all = |v: &Value| v["results"].as_array().unwrap().len();
    let (_, everything) = get_on(&state, "/api/items/1001/similar?k=11&trained=1").await;
    let (_, everything_plain) = get_on(&state, "/api/items/1001/similar?k=11&trained=0").await;
    assert_eq!(all(&everything), 11);
    assert_eq!(ids(&everything), ids(&everything_plain));
}
