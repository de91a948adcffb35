//! The web app and JSON API (axum): upload a photo, see similar products; browse the
//! catalogue; product photos and thumbnails. The only module that knows HTTP and JSON.
//!
//! Admission (`admission.rs`) decides what the server takes on, by what it holds: each
//! connection is let in on an allowance (capped in all and per client address, with a
//! reserve that answers only `/healthz` and `/metrics`); an upload's body is judged by
//! the bytes that arrive (`body.rs`); bodies, fetched photos and decodes share one byte
//! budget; every search runs in one pool of threads behind a bounded queue. Past the
//! budget or the queue a request gets 503 with `Retry-After` at once; refusals are
//! logged once per interval, not per request.
//!
//! Items can be added (`POST /api/items`) and removed (`DELETE /api/items/{id}`) while the
//! server answers, with a bearer token given at start-up; without one these are disabled.

mod admission;
mod assets;
mod body;
mod catalogue;
mod error;
mod form;
mod head;
mod images;
mod items;
mod listen;
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

pub use admission::{SEARCH_NICENESS, yield_to_connections};
pub use catalogue::{Column, FacetsOut, StatsOut, TrainedOut, ValueCount};
pub use error::{AppError, ErrorBody};
pub use items::{ItemOut, ItemsPage};
pub use listen::serve_on;
pub use recommend::{EmbedOut, FilterValue, RecommendIn};
pub use search::{BatchItem, BatchOut, GarmentOut, HitOut, MAX_BATCH, SearchOut};
pub use write::WriteOut;

// The handlers and their helpers, for the router and for one another.
use catalogue::*;
use form::*;
use images::*;
use items::*;
use params::*;
use search::*;

use crate::engine::{Census, Engine, MAX_K, NewItem, Query, WriteReport};
use crate::index::{Filter, Hit};
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
    /// Threads searches (and writes) run on; 0: one per core.
    pub workers: usize,
    /// Searches (and writes) waiting for a thread; one more is answered 503 at once.
    pub queue: usize,
    /// Bearer token the write endpoints (`POST /api/items`, `DELETE /api/items/{id}`)
    /// require; `None` (or empty) disables them.
    pub admin_token: Option<String>,
    /// How long a search may wait in the queue: one that the searches already waiting
    /// would keep longer is answered 503 at once, one that waited longer all the same is
    /// answered 503 when its turn comes, not run.
    pub queue_wait: std::time::Duration,
    /// A connection must send a request's headers within this, or it is closed; also how
    /// long a connection may sit idle between requests.
    pub header_timeout: std::time::Duration,
    /// An upload with no byte for this long gets 408 and its connection is closed.
    pub body_idle_timeout: std::time::Duration,
    /// How long an upload may take at any pace before `min_body_rate` applies.
    pub body_grace: std::time::Duration,
    /// After `body_grace`, the bytes of an upload received so far must keep up with this
    /// many per second (counted from its start), or it gets 408 (0: no minimum).
    pub min_body_rate: u64,
    /// Connections open at once for any request; more are let in on the reserve.
    pub max_connections: usize,
    /// Connections beyond `max_connections` that answer only `/healthz` and `/metrics`
    /// (anything else gets 503); past these, connections are closed as they arrive.
    pub reserved_connections: usize,
    /// Connections one client address may hold open; more are closed as they arrive.
    pub max_connections_per_address: usize,
    /// Connections the system may hold made but not yet taken in ([`listen`]).
    pub listen_backlog: u32,
    /// Bytes that upload bodies, photos fetched by URL and decodes may hold together;
    /// a request that would go past it gets 503.
    pub memory_budget: u64,
    /// Photos fetched by URL at once, over all requests.
    pub max_fetches: usize,
    /// Nice value added to the search threads (see [`yield_to_connections`]).
    pub search_niceness: i32,
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
            workers: 0,
            queue: 64,
            admin_token: None,
            queue_wait: std::time::Duration::from_millis(500),
            header_timeout: std::time::Duration::from_secs(10),
            body_idle_timeout: std::time::Duration::from_secs(10),
            body_grace: std::time::Duration::from_secs(10),
            min_body_rate: 32 * 1024,
            max_connections: 1024,
            reserved_connections: 128,
            max_connections_per_address: 64,
            listen_backlog: 4096,
            memory_budget: 384 * 1024 * 1024,
            max_fetches: 16,
            search_niceness: SEARCH_NICENESS,
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

/// Everything a request handler needs.
pub struct AppState {
    engine: Arc<Engine>,
    catalog: Option<images::PhotoRoot>,
    max_upload: usize,
    /// Where every search and write runs.
    pool: admission::Pool,
    /// What upload bodies, fetched photos and decodes hold, together.
    budget: Arc<admission::Budget>,
    /// Photos being fetched by URL, over all requests.
    fetches: Arc<tokio::sync::Semaphore>,
    /// How uploads must arrive.
    pace: body::Pace,
    queue_wait: std::time::Duration,
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
        let (summary, uncounted) = match Summary::of_warmed(&engine) {
            Ok(Some(s)) => (s, false),
            // Counted when first asked for, after `warm` (see `serve`).
            Ok(None) => (Summary::default(), true),
            Err(e) => {
                let e = crate::error::chain(&e);
                tracing::warn!("cannot count the catalogue's values yet: {e}");
                (Summary::default(), true)
            }
        };
        let summary = ArcSwap::from_pointee(summary);
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
            pool: admission::Pool::new(
                opts.workers,
                opts.queue,
                opts.queue_wait,
                opts.search_niceness,
            ),
            budget: admission::Budget::new(opts.memory_budget),
            fetches: Arc::new(tokio::sync::Semaphore::new(opts.max_fetches.max(1))),
            pace: body::Pace {
                idle: opts.body_idle_timeout,
                grace: opts.body_grace,
                min_rate: opts.min_body_rate,
            },
            queue_wait: opts.queue_wait,
            refused: Refusals::default(),
            admin_token,
            summary,
            summary_stale: AtomicBool::new(uncounted),
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
            .layer(axum::middleware::from_fn_with_state(state.clone(), body::whole_body))
    };
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{file}", get(assets::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
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
        .layer(axum::middleware::from_fn(head_limits))
        .layer(axum::middleware::from_fn_with_state(state.clone(), json_errors))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(tower_http::trace::TraceLayer::new_for_http().on_failure(
            |class: tower_http::classify::ServerErrorsFailureClass,
             latency: std::time::Duration,
             _: &tracing::Span| {
                use tower_http::classify::ServerErrorsFailureClass::StatusCode as Status;
                match class {
                    // 503s are counted and logged per interval (`Refusals`), not one by one.
                    Status(s) if s == StatusCode::SERVICE_UNAVAILABLE => {}
                    // A photo's URL failed: the remote end's fault, not this server's.
                    Status(s) if s == StatusCode::BAD_GATEWAY => {
                        tracing::warn!(?latency, "a photo's URL could not be fetched (502)");
                    }
                    class => tracing::error!(%class, ?latency, "request failed"),
                }
            },
        ))
        .with_state(state)
}

/// Longest URL (path and query) answered; longer ones get a JSON 414 here, before
/// routing, rather than hyper's empty one at its own, larger limit.
const MAX_URI_BYTES: usize = 8 * 1024;

async fn head_limits(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return AppError::UriTooLong(format!(
            "the URL is {len} bytes long; at most {MAX_URI_BYTES} are accepted"
        ))
        .into_response();
    }
    // A keep-alive connection's later requests are parsed by hyper alone (`head.rs` reads
    // the first): the same limits, with the same JSON answers.
    let headers = req.headers();
    if headers.len() > head::MAX_HEADERS {
        return AppError::HeadersTooLarge(format!(
            "the request has more than {} headers",
            head::MAX_HEADERS
        ))
        .into_response();
    }
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if bytes > head::MAX_HEAD {
        return AppError::HeadersTooLarge(format!(
            "the request's headers are over {} KB",
            head::MAX_HEAD / 1024
        ))
        .into_response();
    }
    next.run(req).await
}

/// Every refusal as JSON, the server's folders left out: axum's own answers (405 for a
/// method a route does not take; a body over a limit) come empty or as text, and are
/// rewritten here; a message naming the index's or the catalogue's folder names them by
/// what they are instead (a client has no business knowing the server's paths).
async fn json_errors(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = req.method().clone();
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // Error bodies are short messages; anything longer is cut, not buffered whole.
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let mut message = if json {
        serde_json::from_slice::<ErrorBody>(&text).map(|b| b.error).unwrap_or_default()
    } else {
        String::from_utf8_lossy(&text).trim().to_string()
    };
    if message.is_empty() {
        message = if status == StatusCode::METHOD_NOT_ALLOWED {
            let allowed = parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok());
            format!("{method} is not taken here (allowed: {})", allowed.unwrap_or("none"))
        } else {
            status.canonical_reason().unwrap_or("error").to_string()
        };
    }
    for (folder, name) in state.folders() {
        message = message.replace(&folder, name);
    }
    let body = serde_json::to_vec(&ErrorBody { error: message }).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

impl AppState {
    /// The server's folders as messages might show them, and what to call them instead.
    fn folders(&self) -> Vec<(String, &'static str)> {
        let mut out = vec![(self.engine.location().to_string(), "the index")];
        if let Some(images::PhotoRoot::Folder(dir)) = &self.catalog {
            out.push((dir.display().to_string(), "the catalogue"));
        }
        // Longest first, so that a folder inside another is named as itself.
        out.sort_by_key(|(folder, _)| std::cmp::Reverse(folder.len()));
        out.retain(|(folder, _)| folder.len() > 1);
        out
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
    tracing::info!(
        threads = state.pool.workers(),
        queue = opts.queue,
        budget_mb = opts.memory_budget >> 20,
        "searches run on the pool"
    );
    let listener = listen(addr, opts.listen_backlog)?;
    if !state.engine.warmed() {
        // Counted while the server listens: `/healthz` answers meanwhile and `/readyz`
        // says why it is not ready; a search that comes first waits for the count.
        let engine = state.engine.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            // Until it succeeds (the store may be down at start); a search that comes
            // first takes the count itself.
            while let Err(e) = engine.warm() {
                tracing::warn!(
                    "cannot count the catalogue's values yet: {}",
                    crate::error::chain(&e)
                );
                std::thread::sleep(WARM_RETRY);
            }
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "counted the catalogue's values: ready"
            );
        });
    }
    // The loop runs on a worker thread rather than on the thread that waits for it, so
    // that the task it starts for a connection goes first in that worker's queue
    // (tokio's LIFO slot) instead of to the shared queue behind every task a crowd keeps
    // busy: a probe's head is read as soon as it arrives.
    let running = tokio::spawn(async move {
        serve_on(listener, state, &opts, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    });
    running.await.map_err(std::io::Error::other)?
}

/// A listening socket on `addr` whose queue of connections made but not yet taken in
/// holds `backlog`. Connections past the allowances are closed as they come, and their
/// clients may come straight back: with the usual 1,024, such a crowd fills the queue,
/// and the kernel then drops every new connection's first packet, the health probe's
/// too, which is sent again only after a second (measured: `/healthz` p99 of 1.05 s,
/// BENCHMARKS "Admission under attack"). The kernel caps it at its somaxconn.
pub fn listen(
    addr: std::net::SocketAddr,
    backlog: u32,
) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server can take its port back at once.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
}

/// How long `/readyz` waits for the store before calling it unready.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness, apart from liveness (`/healthz`): whether the index's store answers (a
/// folder always does; a Milvus server may not), and, without a snapshot, whether the
/// catalogue's values are counted ([`crate::engine::Engine::warm`]). 503 with the reason (`{"error": ...}`)
/// and Retry-After when it does not, so that a balancer sends shoppers to another server meanwhile.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.engine.clone();
    let answered =
        tokio::time::timeout(READY_WITHIN, tokio::task::spawn_blocking(move || engine.ready()))
            .await;
    let reason = match answered {
        Ok(Ok(Ok(()))) if !state.engine.warmed() => COUNTING,
        Ok(Ok(Ok(()))) => return Json(serde_json::json!({"ready": true})).into_response(),
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %crate::error::chain(&e), "not ready");
            error::UNAVAILABLE
        }
        Ok(Err(_)) => error::UNAVAILABLE,
        Err(_) => "the index's store did not answer within 2 s",
    };
    unready(reason)
}

/// How long a server waits to count the catalogue again when its store did not answer.
const WARM_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a server on a Milvus collection is not ready in its first moments.
const COUNTING: &str = "counting the catalogue's values (facets and the class priors of \
                        predictions) before the first search";

/// `/readyz`'s 503, with the reason.
fn unready(reason: &str) -> Response {
    let mut res = (
        StatusCode::SERVICE_UNAVAILABLE,
        // The error shape every failed request has (the error middleware keeps it).
        Json(ErrorBody { error: reason.to_string() }),
    )
        .into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(error::UNAVAILABLE_RETRY));
    res
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
                    items = state.engine.items_in_memory(),
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
