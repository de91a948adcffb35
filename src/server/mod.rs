//! The web app and JSON API (axum): upload a photo, see similar products; browse the
//! catalogue; product photos and thumbnails. The only module that knows HTTP and JSON.
//!
//! Inference runs on the blocking pool behind a bounded number of slots: when all are
//! taken a search gets 503 at once instead of queueing without limit.
//!
//! Items can be added (`POST /api/items`) and removed (`DELETE /api/items/{id}`) while the
//! server answers, with a bearer token given at start-up; without one these are disabled.

mod assets;
mod error;
mod openapi;
mod thumbs;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

pub use error::{AppError, ErrorBody};
pub use write::WriteOut;

use crate::engine::{Engine, MAX_K, NewItem, Query, WriteReport};
use crate::index::{Filter, Hit, VectorIndex};
use crate::preprocess::{Crop, QueryResize};
use crate::store::ItemRecord;

/// Largest k the page and API accept.
pub const API_MAX_K: usize = 50;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Catalogue folder the photos are served from (default: the one the index was built from).
    pub catalog: Option<PathBuf>,
    /// Largest accepted upload, in bytes.
    pub max_upload: usize,
    /// Searches running or waiting at once before the server answers 503.
    pub max_inflight: usize,
    /// Bearer token the write endpoints (`POST /api/items`, `DELETE /api/items/{id}`)
    /// require; `None` (or empty) disables them.
    pub admin_token: Option<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { catalog: None, max_upload: 20 * 1024 * 1024, max_inflight: 32, admin_token: None }
    }
}

impl ServeOptions {
    /// Options as `lookalike serve` takes them (upload limit in MB), checked: a token of
    /// at least 8 characters, an upload limit of 1..=1024 MB.
    pub fn new(
        catalog: Option<PathBuf>,
        max_upload_mb: usize,
        max_inflight: usize,
        admin_token: Option<String>,
    ) -> crate::Result<Self> {
        if admin_token.as_deref().is_some_and(|t| t.trim().len() < 8) {
            return Err(crate::Error::BadParameter {
                name: "admin-token",
                message: "use a token of at least 8 characters".into(),
            });
        }
        if max_upload_mb == 0 || max_upload_mb > 1024 {
            return Err(crate::Error::BadParameter {
                name: "max-upload-mb",
                message: format!("{max_upload_mb} is not in 1..=1024"),
            });
        }
        Ok(Self { catalog, max_upload: max_upload_mb * 1024 * 1024, max_inflight, admin_token })
    }
}

/// Everything a request handler needs.
pub struct AppState {
    engine: Arc<Engine>,
    catalog: Option<PathBuf>,
    /// Canonical index folder: where photos of items added through the API live.
    index_dir: PathBuf,
    max_upload: usize,
    slots: Arc<Semaphore>,
    /// Digest of the admin token; `None`: write endpoints disabled.
    admin_token: Option<blake3::Hash>,
    /// Facets and statistics, recomputed when first asked for after a write (a write
    /// only marks them stale: its cost stays in proportion to its own items).
    summary: ArcSwap<Summary>,
    summary_stale: AtomicBool,
    /// Serialises recomputing `summary`, so an older snapshot never replaces a newer one.
    summary_writer: Mutex<()>,
    thumbs: thumbs::Cache,
}

/// Value counts of the metadata columns, as of one snapshot of the index.
#[derive(Debug, Default)]
struct Summary {
    facets: Vec<Column>,
    stats: Vec<Column>,
}

impl Summary {
    fn of(engine: &Engine) -> Self {
        let idx = engine.index();
        let stats = column_counts(&engine.info().columns, &idx);
        let facets = stats
            .iter()
            // A column with a value per item (names, ids) is no filter.
            .filter(|c| {
                c.distinct <= FACET_MAX_VALUES && c.distinct > 1 && c.distinct * 2 <= idx.len()
            })
            .cloned()
            .collect();
        Self { facets, stats }
    }
}

impl AppState {
    pub fn new(engine: Arc<Engine>, opts: &ServeOptions) -> Self {
        let catalog = opts
            .catalog
            .clone()
            .or_else(|| engine.info().catalog.clone().map(PathBuf::from))
            .and_then(|p| std::fs::canonicalize(p).ok());
        let summary = ArcSwap::from_pointee(Summary::of(&engine));
        let admin_token = opts
            .admin_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| blake3::hash(t.as_bytes()));
        let index_dir =
            std::fs::canonicalize(engine.dir()).unwrap_or_else(|_| engine.dir().to_path_buf());
        Self {
            engine,
            catalog,
            index_dir,
            max_upload: opts.max_upload,
            slots: Arc::new(Semaphore::new(opts.max_inflight.max(1))),
            admin_token,
            summary,
            summary_stale: AtomicBool::new(false),
            summary_writer: Mutex::new(()),
            thumbs: thumbs::Cache::new(4096),
        }
    }
}

/// Columns with more distinct values than this are not offered as filters.
const FACET_MAX_VALUES: usize = 200;
/// Values listed per column in the statistics.
const STATS_MAX_VALUES: usize = 100;

/// Counts of one metadata column's values, most frequent first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Column {
    pub name: String,
    /// Number of distinct values.
    pub distinct: usize,
    /// Items with no value in this column.
    pub missing: usize,
    pub values: Vec<ValueCount>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ValueCount {
    pub value: String,
    pub count: usize,
}

/// Every column's value counts, the most frequent `FACET_MAX_VALUES` kept.
fn column_counts(columns: &[String], idx: &VectorIndex) -> Vec<Column> {
    columns
        .iter()
        .map(|col| {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            let mut missing = 0;
            for key in idx.keys() {
                match idx.metadata(key).and_then(|m| m.get(col)) {
                    Some(v) => *counts.entry(v.as_str()).or_insert(0) += 1,
                    None => missing += 1,
                }
            }
            let distinct = counts.len();
            let mut values: Vec<ValueCount> = counts
                .into_iter()
                .map(|(v, c)| ValueCount { value: v.to_string(), count: c })
                .collect();
            values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            values.truncate(FACET_MAX_VALUES);
            Column { name: col.clone(), distinct, missing, values }
        })
        .collect()
}

/// The router, apart from `main` so tests can call it directly.
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.max_upload + 64 * 1024;
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/search", post(search).layer(DefaultBodyLimit::max(limit)))
        .route(
            "/api/items",
            get(list_items).post(write::add_item).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/api/items/{id}", get(get_item).delete(write::remove_item))
        .route("/api/items/{id}/similar", get(similar))
        .route("/api/facets", get(facets))
        .route("/api/stats", get(stats))
        .route("/api/openapi.json", get(openapi::document))
        .route("/images/{id}", get(image))
        .route("/thumbs/{id}", get(thumbnail))
        .fallback(|| async { AppError::NotFound("no such page".into()) })
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serve until Ctrl-C.
pub async fn serve(
    engine: Engine,
    addr: std::net::SocketAddr,
    opts: ServeOptions,
) -> std::io::Result<()> {
    let state = Arc::new(AppState::new(Arc::new(engine), &opts));
    if state.catalog.is_none() {
        tracing::warn!(
            "catalogue folder not found: product photos will not be shown (use --catalog)"
        );
    }
    if state.admin_token.is_some() {
        tracing::info!("write endpoints enabled (POST /api/items, DELETE /api/items/{{id}})");
    } else {
        tracing::info!("write endpoints disabled (no --admin-token)");
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// An item as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemOut {
    pub id: String,
    pub metadata: BTreeMap<String, String>,
    /// URL of the full product photo.
    pub image: String,
    /// URL of a small JPEG thumbnail.
    pub thumbnail: String,
}

/// A search result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HitOut {
    pub id: String,
    /// Cosine similarity, 1 = identical.
    pub score: f32,
    pub metadata: BTreeMap<String, String>,
    pub image: String,
    pub thumbnail: String,
}

impl From<Hit> for HitOut {
    fn from(h: Hit) -> Self {
        let (image, thumbnail) = urls(&h.id);
        HitOut { id: h.id, score: h.score, metadata: h.metadata, image, thumbnail }
    }
}

fn urls(id: &str) -> (String, String) {
    (urls_of("/images/", id), urls_of("/thumbs/", id))
}

/// `prefix` followed by the id, percent-encoded as one path segment.
fn urls_of(prefix: &str, id: &str) -> String {
    let enc: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("{prefix}{}", enc.replace('+', "%20"))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchOut {
    pub results: Vec<HitOut>,
    /// What the query looks like, per column the index can predict ("Looks like: Casual
    /// Shoes, 92%"): the model's class heads over the catalogue's values, or a vote of the
    /// nearest items' labels (`source`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predicted: Vec<crate::category::Prediction>,
    /// The square of the photo (pixels, EXIF orientation applied) the search used, when
    /// the garment was found in a snapshot and searched by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garment_box: Option<Crop>,
    /// Server time for the whole request, in milliseconds.
    pub took_ms: f64,
}

impl SearchOut {
    fn of(answer: crate::engine::Answer, t0: Instant) -> Self {
        Self {
            results: answer.hits.into_iter().map(HitOut::from).collect(),
            predicted: answer.predicted,
            garment_box: answer.garment,
            took_ms: t0.elapsed().as_secs_f64() * 1e3,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemsPage {
    pub items: Vec<ItemOut>,
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FacetsOut {
    pub columns: Vec<Column>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsOut {
    pub count: usize,
    pub dimension: usize,
    pub model: String,
    /// Weight of the colour descriptor in the stored vectors (0: none; queries may then
    /// not ask for colour).
    pub colour_weight: f32,
    /// Cells of the partition (the approximate index used from 200,000 candidates on; 0:
    /// none), and the items no cell holds yet (scanned by every search).
    pub cells: usize,
    pub unplaced: u64,
    /// The trained projection (`lookalike train`), if the index has one.
    pub trained: Option<TrainedOut>,
    /// Columns the model predicts for each query (its class heads), so that results of
    /// the predicted category can come first.
    pub predicts: Vec<String>,
    pub columns: Vec<Column>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrainedOut {
    /// The label it learnt (e.g. articleType) and how many values it knows.
    pub label: String,
    pub classes: usize,
    /// Items it was trained on.
    pub items: usize,
    /// Its share of the score when a query does not say.
    pub default_mix: f32,
}

/// Query-string parameters; `filter` may repeat.
#[derive(Debug, Default)]
struct Params {
    k: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
    filters: Vec<String>,
    colour: Option<String>,
    min_score: Option<String>,
    collapse: Option<String>,
    trained: Option<String>,
    category: Option<String>,
}

fn params(raw: Option<String>) -> Result<Params, AppError> {
    let mut p = Params::default();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "k" => p.k = Some(value.into_owned()),
            "page" => p.page = Some(value.into_owned()),
            "per_page" => p.per_page = Some(value.into_owned()),
            "filter" => p.filters.push(value.into_owned()),
            "colour" => p.colour = Some(value.into_owned()),
            "min_score" => p.min_score = Some(value.into_owned()),
            "collapse" => p.collapse = Some(value.into_owned()),
            "trained" => p.trained = Some(value.into_owned()),
            "category" => p.category = Some(value.into_owned()),
            other => {
                return Err(AppError::BadRequest(format!("unknown query parameter '{other}'")));
            }
        }
    }
    Ok(p)
}

fn number(name: &str, raw: Option<&str>, default: usize, max: usize) -> Result<usize, AppError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.trim().parse::<usize>() {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(AppError::BadRequest(format!(
            "{name} must be a whole number from 1 to {max}, got '{raw}'"
        ))),
    }
}

/// An optional number in `lo..=hi` (`colour`, `min_score`, `collapse`).
fn fraction(name: &str, raw: Option<&str>, lo: f32, hi: f32) -> Result<Option<f32>, AppError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(None) };
    match raw.parse::<f32>() {
        Ok(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
        _ => Err(AppError::BadRequest(format!(
            "{name} must be a number from {lo} to {hi}, got '{raw}'"
        ))),
    }
}

const MAX_COLOUR: f32 = crate::ingest::MAX_COLOUR_WEIGHT;

fn filter(state: &AppState, specs: &[String]) -> Result<Filter, AppError> {
    Ok(state.engine.filter(specs)?)
}

#[utoipa::path(
    post,
    path = "/api/search",
    request_body(content_type = "multipart/form-data", description = "Fields: `image` (the photo, required), `k` (1..50, default 5), `crop` (`x,y,w,h` in pixels of the photo), `filter` (repeatable `column=value`), `resize` (`auto`: pad studio shots, crop snapshots; `pad`; `crop`), `colour` (0..4: how much colour counts against shape; default: the index's weight), `min_score` (-1..1: leave out weaker results), `collapse` (0..1: leave out results with at least this cosine to a better one), `trained` (0..1: the trained projection's share of the score; 0: not used; default: 0.4 when the index has one, except for snapshots; a trained search weighs colour 1.0 unless `colour` says), `category` (0..0.9: the predicted article type's share of the score, colour's scaled alike; 0: by similarity alone; default 0.3 with a model that predicts categories), `locate` (`auto`: search a snapshot by the garment the model finds; `on`: any photo; `off`)."),
    responses(
        (status = 200, body = SearchOut),
        (status = 400, body = ErrorBody, description = "bad parameter or unusable photo"),
        (status = 413, body = ErrorBody, description = "upload over the size limit"),
        (status = 415, body = ErrorBody, description = "not an image"),
        (status = 503, body = ErrorBody, description = "too many searches at once"),
    )
)]
async fn search(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<SearchOut>, AppError> {
    let t0 = Instant::now();
    let mut form = form.map_err(|e| {
        AppError::BadRequest(format!("expected a multipart/form-data upload: {}", e.body_text()))
    })?;
    let mut image: Option<Bytes> = None;
    let (mut k, mut crop, mut filters, mut resize) = (None, None, Vec::new(), QueryResize::Auto);
    let (mut colour_weight, mut min_score, mut collapse, mut trained) = (None, None, None, None);
    let (mut category, mut locate) = (None, None);
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(&e, state.max_upload)),
        };
        let name = field.name().unwrap_or("").to_string();
        let data = field.bytes().await.map_err(|e| multipart_error(&e, state.max_upload))?;
        let text = || String::from_utf8_lossy(&data).trim().to_string();
        match name.as_str() {
            "image" => image = Some(data.clone()),
            "k" => k = Some(text()),
            "crop" if !text().is_empty() => {
                crop = Some(text().parse::<Crop>().map_err(AppError::BadRequest)?);
            }
            "crop" => {}
            "filter" => filters.push(text()),
            "resize" => resize = text().parse::<QueryResize>().map_err(AppError::BadRequest)?,
            "colour" => colour_weight = fraction("colour", Some(&text()), 0.0, MAX_COLOUR)?,
            "min_score" => min_score = fraction("min_score", Some(&text()), -1.0, 1.0)?,
            "collapse" => collapse = fraction("collapse", Some(&text()), 0.0, 1.0)?,
            "trained" => trained = fraction("trained", Some(&text()), 0.0, 1.0)?,
            "category" => category = fraction("category", Some(&text()), 0.0, MAX_CATEGORY)?,
            "locate" => locate = locate_flag(&text())?,
            other => return Err(AppError::BadRequest(format!("unknown form field '{other}'"))),
        }
    }
    let image = image.ok_or_else(|| {
        AppError::BadRequest("missing the 'image' field (the photo to search with)".into())
    })?;
    if image.is_empty() {
        return Err(AppError::BadRequest("the uploaded photo is an empty file".into()));
    }
    if image.len() > state.max_upload {
        return Err(too_large(state.max_upload));
    }
    let query = Query {
        k: number("k", k.as_deref(), 5, API_MAX_K.min(MAX_K))?,
        filter: filter(&state, &filters)?,
        crop,
        resize,
        colour: colour_weight,
        min_score,
        collapse,
        trained,
        category,
        locate,
        ..Query::default()
    };
    let permit = state.slots.clone().try_acquire_owned().map_err(|_| AppError::Busy)?;
    let engine = state.engine.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        engine.search_photo(&image, &query)
    })
    .await
    .map_err(|e| AppError::Internal(format!("search task failed: {e}")))??;
    Ok(Json(SearchOut::of(answer, t0)))
}

const MAX_CATEGORY: f32 = crate::category::MAX_SHARE;

/// The `locate` field: `auto` (or empty), `on`, `off`.
fn locate_flag(text: &str) -> Result<Option<bool>, AppError> {
    match text {
        "" | "auto" => Ok(None),
        "on" | "true" => Ok(Some(true)),
        "off" | "false" => Ok(Some(false)),
        other => {
            Err(AppError::BadRequest(format!("locate must be auto, on or off, got '{other}'")))
        }
    }
}

fn too_large(limit: usize) -> AppError {
    AppError::TooLarge(format!("the upload is over the {} MB limit", limit / (1024 * 1024)))
}

fn multipart_error(e: &axum::extract::multipart::MultipartError, limit: usize) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        AppError::BadRequest(format!("malformed upload: {}", e.body_text()))
    }
}

fn item_out(idx: &VectorIndex, key: u32) -> Option<ItemOut> {
    let id = idx.id(key)?.to_string();
    let (image, thumbnail) = urls(&id);
    Some(ItemOut { id, metadata: idx.metadata(key)?.clone(), image, thumbnail })
}

fn unknown(id: &str) -> AppError {
    AppError::NotFound(format!("unknown id '{id}'"))
}

/// The item's record, from one snapshot of the index.
fn record_of(state: &AppState, id: &str) -> Result<ItemRecord, AppError> {
    let idx = state.engine.index();
    idx.key_of(id).and_then(|k| idx.record(k)).cloned().ok_or_else(|| unknown(id))
}

#[utoipa::path(get, path = "/api/items/{id}",
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, body = ItemOut), (status = 404, body = ErrorBody)))]
async fn get_item(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<ItemOut>, AppError> {
    let idx = state.engine.index();
    let item = idx.key_of(&id).and_then(|k| item_out(&idx, k)).ok_or_else(|| unknown(&id))?;
    Ok(Json(item))
}

#[utoipa::path(get, path = "/api/items/{id}/similar",
    params(("id" = String, Path, description = "item id"),
        ("k" = Option<usize>, Query, description = "number of results, 1..50 (default 5)"),
        ("filter" = Option<Vec<String>>, Query, description = "column=value, repeatable"),
        ("colour" = Option<f32>, Query, description = "0..4: how much colour counts against shape (default: the index's weight)"),
        ("min_score" = Option<f32>, Query, description = "-1..1: leave out weaker results"),
        ("collapse" = Option<f32>, Query, description = "0..1: leave out results with at least this cosine to a better one"),
        ("trained" = Option<f32>, Query, description = "0..1: the trained projection's share of the score (0: not used; default 0.4 when the index has one, with colour 1.0 unless `colour` says)"),
        ("category" = Option<f32>, Query, description = "0..0.9: the predicted article type's share of the score (0: by similarity alone; default 0.3 with a model that predicts categories)")),
    responses((status = 200, body = SearchOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn similar(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchOut>, AppError> {
    let t0 = Instant::now();
    let p = params(raw)?;
    let q = Query {
        k: number("k", p.k.as_deref(), 5, API_MAX_K)?,
        filter: filter(&state, &p.filters)?,
        colour: fraction("colour", p.colour.as_deref(), 0.0, MAX_COLOUR)?,
        min_score: fraction("min_score", p.min_score.as_deref(), -1.0, 1.0)?,
        collapse: fraction("collapse", p.collapse.as_deref(), 0.0, 1.0)?,
        trained: fraction("trained", p.trained.as_deref(), 0.0, 1.0)?,
        category: fraction("category", p.category.as_deref(), 0.0, MAX_CATEGORY)?,
        ..Query::default()
    };
    let answer = state.engine.similar_answer(&id, &q)?;
    Ok(Json(SearchOut::of(answer, t0)))
}

#[utoipa::path(get, path = "/api/items",
    params(("page" = Option<usize>, Query, description = "1-based page (default 1)"),
        ("per_page" = Option<usize>, Query, description = "1..100 (default 24)"),
        ("filter" = Option<Vec<String>>, Query, description = "column=value, repeatable")),
    responses((status = 200, body = ItemsPage), (status = 400, body = ErrorBody)))]
async fn list_items(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ItemsPage>, AppError> {
    let p = params(raw)?;
    let page = number("page", p.page.as_deref(), 1, usize::MAX / 1024)?;
    let per_page = number("per_page", p.per_page.as_deref(), 24, 100)?;
    let f = filter(&state, &p.filters)?;
    let idx = state.engine.index();
    let keys: Vec<u32> = match idx.filter_keys(&f) {
        Some(keys) => keys.iter().collect(),
        None => idx.keys().collect(),
    };
    let items = keys
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .filter_map(|&k| item_out(&idx, k))
        .collect();
    Ok(Json(ItemsPage { items, total: keys.len(), page, per_page }))
}

/// The facets and statistics of the current index, recomputed (off the async threads)
/// if a write made them stale.
async fn summary(state: &Arc<AppState>) -> Result<Arc<Summary>, AppError> {
    if state.summary_stale.swap(false, Ordering::AcqRel) {
        let s = state.clone();
        tokio::task::spawn_blocking(move || {
            // The lock guards no data: a panic elsewhere while holding it breaks nothing.
            let _one = s.summary_writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            s.summary.store(Arc::new(Summary::of(&s.engine)));
        })
        .await
        .map_err(|e| AppError::Internal(format!("statistics task failed: {e}")))?;
    }
    Ok(state.summary.load_full())
}

#[utoipa::path(get, path = "/api/facets", responses((status = 200, body = FacetsOut)))]
async fn facets(State(state): State<Arc<AppState>>) -> Result<Json<FacetsOut>, AppError> {
    Ok(Json(FacetsOut { columns: summary(&state).await?.facets.clone() }))
}

#[utoipa::path(get, path = "/api/stats", responses((status = 200, body = StatsOut)))]
async fn stats(State(state): State<Arc<AppState>>) -> Result<Json<StatsOut>, AppError> {
    let info = state.engine.info();
    let summary = summary(&state).await?;
    let columns = summary
        .stats
        .iter()
        .map(|c| Column {
            values: c.values.iter().take(STATS_MAX_VALUES).cloned().collect(),
            ..c.clone()
        })
        .collect();
    let index = state.engine.index();
    Ok(Json(StatsOut {
        count: index.len(),
        dimension: info.dim,
        model: info.model.name.clone(),
        colour_weight: info.colour_weight,
        cells: index.cells().map_or(0, |c| c.partition().cells()),
        unplaced: index.cells().map_or(index.len() as u64, |c| c.unplaced()),
        trained: state.engine.projection().ok().flatten().map(|p| TrainedOut {
            label: p.meta().label.clone(),
            classes: p.meta().classes.len(),
            items: p.meta().items,
            default_mix: crate::projection::DEFAULT_MIX,
        }),
        predicts: state
            .engine
            .heads()
            .ok()
            .flatten()
            .map(|h| {
                h.heads()
                    .iter()
                    .map(|h| h.column().to_string())
                    .filter(|c| info.columns.contains(c))
                    .collect()
            })
            .unwrap_or_default(),
        columns,
    }))
}

/// The photo file of an item: resolved from the index (never from the request), and only
/// inside the catalogue folder (or, for items added through the API, the index folder).
fn photo_path(state: &AppState, record: &ItemRecord) -> Result<PathBuf, AppError> {
    let root = if record.added {
        &state.index_dir
    } else {
        state
            .catalog
            .as_ref()
            .ok_or_else(|| AppError::NotFound("the catalogue folder is not available".into()))?
    };
    let rel = Path::new(&record.path);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(AppError::NotFound("photo outside the catalogue".into()));
    }
    let full = std::fs::canonicalize(root.join(rel))
        .map_err(|_| AppError::NotFound("photo file is missing".into()))?;
    if !full.starts_with(root) {
        return Err(AppError::NotFound("photo outside the catalogue".into()));
    }
    Ok(full)
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
}

fn cached(headers: &HeaderMap, etag: String, content_type: &'static str, body: Bytes) -> Response {
    let mut res = if not_modified(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    res
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("bmp") => "image/bmp",
        Some("tif" | "tiff") => "image/tiff",
        _ => "application/octet-stream",
    }
}

#[utoipa::path(get, path = "/images/{id}", params(("id" = String, Path, description = "item id")),
    responses((status = 200, description = "the product photo"), (status = 304, description = "not modified (ETag)"), (status = 404, body = ErrorBody)))]
async fn image(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let record = record_of(&state, &id)?;
    let etag = format!("\"{}\"", record.hash);
    let path = photo_path(&state, &record)?;
    if not_modified(&headers, &etag) {
        return Ok(cached(&headers, etag, "image/jpeg", Bytes::new()));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| AppError::NotFound("photo file is missing".into()))?;
    Ok(cached(&headers, etag, content_type(&path), Bytes::from(bytes)))
}

#[utoipa::path(get, path = "/thumbs/{id}", params(("id" = String, Path, description = "item id")),
    responses((status = 200, description = "a JPEG thumbnail, at most 256 px"), (status = 304, description = "not modified (ETag)"), (status = 404, body = ErrorBody)))]
async fn thumbnail(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let record = record_of(&state, &id)?;
    let hash = record.hash.clone();
    let etag = format!("\"{hash}-t\"");
    if not_modified(&headers, &etag) {
        return Ok(cached(&headers, etag, "image/jpeg", Bytes::new()));
    }
    if let Some(b) = state.thumbs.get(&hash) {
        return Ok(cached(&headers, etag, "image/jpeg", b));
    }
    let path = photo_path(&state, &record)?;
    let bytes = tokio::task::spawn_blocking(move || thumbs::make(&path))
        .await
        .map_err(|e| AppError::Internal(format!("thumbnail task failed: {e}")))?
        .map_err(|e| AppError::Internal(format!("thumbnail of {id}: {e}")))?;
    state.thumbs.put(hash, bytes.clone());
    Ok(cached(&headers, etag, "image/jpeg", bytes))
}

#[cfg(test)]
mod tests;
