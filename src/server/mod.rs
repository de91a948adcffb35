//! The web app and JSON API (axum): upload a photo, see similar products; browse the
//! catalogue; product photos and thumbnails. The only module that knows HTTP and JSON.
//!
//! Inference runs on the blocking pool behind a bounded number of slots: when all are
//! taken a search gets 503 at once instead of queueing without limit.
//!
//! Items can be added (`POST /api/items`) and removed (`DELETE /api/items/{id}`) while the
//! server answers, with a bearer token given at start-up; without one these are disabled.

mod assets;
mod catalogue;
mod error;
mod images;
mod items;
mod openapi;
mod params;
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
pub use search::{HitOut, SearchOut};
pub use write::WriteOut;

// The handlers and their helpers, for the router and for one another.
use catalogue::*;
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

#[cfg(test)]
mod tests;
