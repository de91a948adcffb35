//! Router-level tests: every endpoint and every bad-input case, through `oneshot`.
//! This file holds the shared index and request helpers, and the page and OpenAPI tests;
//! the other files test one resource each.

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

mod browse;
mod connections;
mod fetch;
mod looks;
mod metrics;
mod recommend;
mod search;
mod write;

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
    index_catalog(&cat, &crate::location::Location::Folder(idx.clone()), &IndexOptions::default())
        .unwrap();
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
            // Queries by the index's own model, so that a catalogue photo uploaded finds
            // its stored vector exactly (score 1); the int8 twin that `auto` may choose is
            // tested apart (tests/fashion.rs).
            let engine = Arc::new(
                Engine::open_queried(
                    &crate::location::Location::Folder(idx.to_path_buf()),
                    BackendKind::Auto,
                    None,
                    crate::embed::Parallelism::default(),
                    crate::model::QueryPrecision::Fp32,
                )
                .unwrap(),
            );
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

// ---- Servers with an index of their own, for tests that write. ----

const TOKEN: &str = "s3cret-token";

/// A fresh 8-photo index (ids 1000..1007) and a server on it with `token` as admin token.
fn writable(token: Option<&str>) -> (tempfile::TempDir, Arc<AppState>) {
    let dir = tempfile::tempdir().unwrap();
    let idx = build_index(dir.path(), 8);
    let engine = Arc::new(
        Engine::open(&crate::location::Location::Folder(idx.to_path_buf()), BackendKind::Auto)
            .unwrap(),
    );
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
    std::fs::read_dir(
        state.engine.location().folder().unwrap().join(crate::engine::ADDED_PHOTOS_DIR),
    )
    .map(|d| d.count())
    .unwrap_or(0)
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
async fn a_method_a_route_does_not_take_is_refused_in_json() {
    // Before: 405 with an empty body.
    for (method, uri) in [("GET", "/api/search"), ("POST", "/healthz"), ("PUT", "/api/items/1001")]
    {
        let req = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        let (s, h, b) = send(router(), req).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert!(h["content-type"].to_str().unwrap().starts_with("application/json"));
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(error_of(&v).contains(&format!("{method} is not taken here")), "{v}");
        assert!(h.contains_key("allow"), "{method} {uri}");
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
        "/api/search/batch",
        "/api/recommend",
        "/api/embed",
    ] {
        assert!(v["paths"][path].is_object(), "{path} missing");
    }
    assert!(v["components"]["schemas"]["SearchOut"].is_object());
    for schema in ["BatchOut", "EmbedOut", "RecommendIn"] {
        assert!(v["components"]["schemas"][schema].is_object(), "{schema} missing");
    }
    let search = &v["paths"]["/api/search"]["post"];
    assert!(search["requestBody"]["description"].as_str().unwrap().contains("`url`"), "{search}");
    assert!(search["responses"]["502"].is_object());
    assert!(v["components"]["schemas"]["SearchOut"]["properties"]["no_close_match"].is_object());
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
