//! The web app and JSON API (axum): upload a photo, see similar products; browse the
//! catalogue; product photos and thumbnails. The only module that knows HTTP and JSON.
//!
//! Inference runs on the blocking pool behind a bounded number of slots: when all are
//! taken a search waits briefly for one (`queue_wait`), then gets 503 with `Retry-After`
//! instead of queueing without limit; refusals are logged once per interval, not per
//! request.
//!
//! Items can be added (`POST /api/items`) and removed (`DELETE /api/items/{id}`) while the
//! server answers, with a bearer token given at start-up; without one these are disabled.

mod assets;
mod catalogue;
mod error;
mod form;
mod head;
mod images;
mod items;
mod metrics;
mod openapi;
mod params;
mod recommend;
mod search;
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

pub use catalogue::{Column, FacetsOut, StatsOut, TrainedOut, ValueCount};
pub use error::{AppError, ErrorBody};
pub use items::{ItemOut, ItemsPage};
pub use recommend::{EmbedOut, FilterValue, RecommendIn};
pub use search::{BatchItem, BatchOut, HitOut, MAX_BATCH, SearchOut};
pub use write::WriteOut;

// The handlers and their helpers, for the router and for one another.
use catalogue::*;
use form::*;
use images::*;
use items::*;
use params::*;
use search::*;

use crate::engine::{Engine, MAX_K, NewItem, Query, WriteReport};
use crate::index::{Filter, Hit, VectorIndex};
use crate::preprocess::{Crop, QueryResize};
use crate::store::ItemRecord;

/// Largest k the page and API accept.
pub const API_MAX_K: usize = 50;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Catalogue the photos are served from, a folder or an `s3://BUCKET/PREFIX` address
    /// (default: the one the index was built from).
    pub catalog: Option<PathBuf>,
    /// Largest accepted upload, in bytes.
    pub max_upload: usize,
    /// Searches (and writes) running at once; more wait up to `queue_wait` for a slot.
    pub max_inflight: usize,
    /// Bearer token the write endpoints (`POST /api/items`, `DELETE /api/items/{id}`)
    /// require; `None` (or empty) disables them.
    pub admin_token: Option<String>,
    /// How long a search waits for a slot before the server answers 503.
    pub queue_wait: std::time::Duration,
    /// A connection must send a request's headers within this, or it is closed.
    pub header_timeout: std::time::Duration,
    /// An upload must arrive whole within this (plus its size at 32 KB/s), or it gets 408.
    pub body_timeout: std::time::Duration,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Limits on query photos fetched by URL (and the networks allowed despite the
    /// default refusal of loopback, private and link-local addresses).
    pub fetch: crate::fetch::FetchOptions,
    /// How often to load writes that other processes made to the index
    /// ([`Engine::follow`]); `None`: never.
    pub follow_interval: Option<std::time::Duration>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            catalog: None,
            max_upload: 20 * 1024 * 1024,
            max_inflight: 32,
            admin_token: None,
            queue_wait: std::time::Duration::from_secs(2),
            header_timeout: std::time::Duration::from_secs(10),
            body_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
            fetch: crate::fetch::FetchOptions::default(),
            follow_interval: Some(std::time::Duration::from_secs(1)),
        }
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
        let max_upload = max_upload_mb * 1024 * 1024;
        Ok(Self {
            catalog,
            max_upload,
            max_inflight,
            admin_token,
            fetch: crate::fetch::FetchOptions { max_bytes: max_upload, ..Default::default() },
            ..Self::default()
        })
    }
}

/// Requests refused as busy, counted and logged at most once per [`Refusals::EVERY`]:
/// under overload a log line per refusal would add to the load.
#[derive(Default)]
struct Refusals {
    since_log: std::sync::atomic::AtomicU64,
    last_log: Mutex<Option<Instant>>,
}

impl Refusals {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    fn note(&self) {
        self.since_log.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= Self::EVERY) {
            let n = self.since_log.swap(0, Ordering::Relaxed);
            tracing::warn!(
                "busy: {n} requests refused (503) or connections closed at the limit since \
                 the last report"
            );
            *last = Some(Instant::now());
        }
    }
}

impl AppState {
    /// A slot to run a search or write in, waiting at most `queue_wait` for one.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
        match tokio::time::timeout(self.queue_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.refused.note();
                Err(AppError::Busy)
            }
        }
    }
}

/// Everything a request handler needs.
pub struct AppState {
    engine: Arc<Engine>,
    catalog: Option<images::PhotoRoot>,
    max_upload: usize,
    slots: Arc<Semaphore>,
    queue_wait: std::time::Duration,
    body_timeout: std::time::Duration,
    refused: Refusals,
    /// Digest of the admin token; `None`: write endpoints disabled.
    admin_token: Option<blake3::Hash>,
    /// Facets and statistics, recomputed when first asked for after a write (a write
    /// only marks them stale: its cost stays in proportion to its own items).
    summary: ArcSwap<Summary>,
    summary_stale: AtomicBool,
    /// Serialises recomputing `summary`, so an older snapshot never replaces a newer one.
    summary_writer: Mutex<()>,
    thumbs: thumbs::Cache,
    metrics: metrics::Metrics,
    /// The client for query photos given by URL; an error when it could not start.
    fetcher: Result<crate::fetch::Fetcher, String>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, opts: &ServeOptions) -> Self {
        let catalog = opts
            .catalog
            .as_ref()
            .map(|p| p.display().to_string())
            .or_else(|| engine.info().catalog.clone())
            .and_then(|location| images::PhotoRoot::open(&location));
        let summary = ArcSwap::from_pointee(Summary::of(&engine));
        let admin_token = opts
            .admin_token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| blake3::hash(t.as_bytes()));
        Self {
            engine,
            catalog,
            max_upload: opts.max_upload,
            slots: Arc::new(Semaphore::new(opts.max_inflight.max(1))),
            queue_wait: opts.queue_wait,
            body_timeout: opts.body_timeout,
            refused: Refusals::default(),
            admin_token,
            summary,
            summary_stale: AtomicBool::new(false),
            summary_writer: Mutex::new(()),
            thumbs: thumbs::Cache::new(4096),
            metrics: metrics::Metrics::new(),
            fetcher: crate::fetch::Fetcher::new(opts.fetch.clone()).map_err(|e| e.to_string()),
        }
    }
}

/// The router, apart from `main` so tests can call it directly.
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.max_upload + 64 * 1024;
    // Routes that take uploads: bounded in size, and read whole within a deadline.
    let upload = |route: axum::routing::MethodRouter<Arc<AppState>>| {
        route
            .layer(DefaultBodyLimit::max(limit))
            .layer(axum::middleware::from_fn_with_state(state.clone(), whole_body))
    };
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/search", upload(post(search)))
        .route("/api/items", upload(get(list_items).post(write::add_item)))
        .route("/api/search/batch", upload(post(batch)))
        .route("/api/recommend", upload(post(recommend::recommend)))
        .route("/api/embed", upload(post(recommend::embed)))
        .route("/metrics", get(metrics::metrics))
        .route("/api/items/{id}", get(get_item).delete(write::remove_item))
        .route("/api/items/{id}/similar", get(similar))
        .route("/api/facets", get(facets))
        .route("/api/stats", get(stats))
        .route("/api/openapi.json", get(openapi::document))
        .route("/images/{id}", get(image))
        .route("/thumbs/{id}", get(thumbnail))
        .fallback(|| async { AppError::NotFound("no such page".into()) })
        .layer(axum::middleware::from_fn(uri_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(tower_http::trace::TraceLayer::new_for_http().on_failure(
            |class: tower_http::classify::ServerErrorsFailureClass,
             latency: std::time::Duration,
             _: &tracing::Span| {
                // 503s are counted and logged per interval (`Refusals`), not one by one.
                let busy = matches!(class,
                    tower_http::classify::ServerErrorsFailureClass::StatusCode(s)
                        if s == StatusCode::SERVICE_UNAVAILABLE);
                if !busy {
                    tracing::error!(%class, ?latency, "request failed");
                }
            },
        ))
        .with_state(state)
}

/// Longest URL (path and query) answered; longer ones get a JSON 414 here, before
/// routing, rather than hyper's empty one at its own, larger limit.
const MAX_URI_BYTES: usize = 8 * 1024;

async fn uri_limit(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return AppError::UriTooLong(format!(
            "the URL is {len} bytes long; at most {MAX_URI_BYTES} are accepted"
        ))
        .into_response();
    }
    next.run(req).await
}

/// The slowest average pace an upload may arrive at (32 KB/s, a poor mobile uplink),
/// beyond the `body_timeout` grace period.
const MIN_UPLOAD_BYTES_PER_SEC: f64 = 32.0 * 1024.0;

/// An upload read whole within `body_timeout` (plus its announced size at
/// [`MIN_UPLOAD_BYTES_PER_SEC`]) before its handler runs: a client that trickles its body
/// (a byte now and then) gets 408 instead of holding a connection and a slot
/// indefinitely. Uploads are buffered anyway (multipart fields are read whole).
async fn whole_body(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let limit = state.max_upload + 64 * 1024;
    // A grace period, plus time for the announced size at a slow mobile uplink's pace:
    // a large photo over a slow line is not cut off, a trickle is.
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0)
        .min(limit as u64);
    let deadline = state.body_timeout
        + std::time::Duration::from_secs_f64(announced as f64 / MIN_UPLOAD_BYTES_PER_SEC);
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
        }
        // Over the limit (`to_bytes` says "length limit exceeded"), or the client went away.
        Ok(Err(e)) if e.to_string().contains("length limit") => {
            too_large(state.max_upload).into_response()
        }
        Ok(Err(e)) => {
            AppError::BadRequest(format!("the upload could not be read: {e}")).into_response()
        }
        Err(_) => AppError::Timeout(format!(
            "the upload did not arrive within {:.0} s",
            deadline.as_secs_f64()
        ))
        .into_response(),
    }
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
            "catalogue not found (no folder, or a bad s3:// address): product photos will not be shown (use --catalog)"
        );
    }
    if state.admin_token.is_some() {
        tracing::info!("write endpoints enabled (POST /api/items, DELETE /api/items/{{id}})");
    } else {
        tracing::info!("write endpoints disabled (no --admin-token)");
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, state, &opts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// Serve on `listener` until `shutdown` completes. Each connection must send a request's
/// headers within `header_timeout` (slow or idle clients are closed, so they cannot hold
/// connections forever), and at most `max_connections` are open at once (more are
/// closed on arrival); then requests in flight get a few seconds to finish.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    opts: &ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let router = app(state.clone());
    let follower = opts.follow_interval.map(|every| tokio::spawn(follow(state.clone(), every)));
    let max = opts.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let open = Arc::new(Semaphore::new(max));
    let header_timeout = opts.header_timeout;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            state.refused.note();
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _open = permit;
            let mut stream = stream;
            // The first request's head is read here, so that one too long for hyper gets
            // a JSON answer rather than hyper's empty 414/431; then hyper reads it again.
            let head = match tokio::time::timeout(header_timeout, head::read(&mut stream)).await {
                Ok(Ok(head::Head::Fine(bytes))) => bytes,
                Ok(Ok(head::Head::TooLong(status, message))) => {
                    head::refuse(&mut stream, status, &message).await;
                    return;
                }
                // Closed, or silent past the header timeout.
                Ok(Err(_)) | Err(_) => return,
            };
            let io = head::Rewind::new(head, stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(io), service);
            if let Err(e) = conn.await {
                tracing::debug!(%e, %peer, "connection closed");
            }
        });
    }
    if let Some(f) = follower {
        f.abort();
    }
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), open.acquire_many(all)).await;
    Ok(())
}

/// Every `every`, load what other processes wrote to the index, so that several servers
/// on one index answer alike and a write through one is seen by all.
async fn follow(state: Arc<AppState>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let engine = state.engine.clone();
        match tokio::task::spawn_blocking(move || engine.follow()).await {
            Ok(Ok(true)) => {
                state.summary_stale.store(true, Ordering::Release);
                tracing::info!(
                    items = state.engine.index().len(),
                    "loaded the index's outside writes"
                );
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not look for outside writes"),
            Err(e) => tracing::warn!(error = %e, "the follower task failed"),
        }
    }
}

#[cfg(test)]
mod tests;
