//! `GET /metrics`: what the server has done, in the Prometheus/OpenMetrics text format —
//! requests by route and status, latency per route and per stage of a search (decode,
//! embed, search, re-rank), uploads refused, photos fetched by URL, errors, the index's
//! size.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::*;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

fn seconds() -> Histogram {
    // 0.5 ms to ~16 s: a cached thumbnail to a search queued behind a busy server.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The server's metrics; cheap to update from any request.
pub(super) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
    refused: Family<ReasonLabels, Counter>,
    fetches: Family<OutcomeLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    connections_refused: Counter,
    items: Gauge,
    held: Gauge,
}

impl Metrics {
    pub(super) fn new() -> Self {
        let mut registry = Registry::with_prefix("lookalike");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            seconds as fn() -> Histogram,
        );
        let stages = Family::<StageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            seconds as fn() -> Histogram,
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        let fetches = Family::<OutcomeLabels, Counter>::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        let items = Gauge::default();
        let connections_refused = Counter::default();
        let held = Gauge::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route",
            latency.clone(),
        );
        registry.register(
            "stage_duration_seconds",
            "Time spent per stage of a search: decode, embed, search, rerank",
            stages.clone(),
        );
        registry.register(
            "uploads_refused",
            "Requests refused for their upload: too_large (413), not_an_image (415), \
             timeout (408), busy (503)",
            refused.clone(),
        );
        registry.register(
            "url_fetches",
            "Query photos fetched by URL, by outcome",
            fetches.clone(),
        );
        registry.register(
            "errors",
            "Answers with an error status: client (4xx), upstream (502: a photo's URL \
             could not be fetched), server (other 5xx)",
            errors.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed as they arrived: their address held its share, or every \
             allowance was full",
            connections_refused.clone(),
        );
        registry.register("index_items", "Items in the index", items.clone());
        registry.register(
            "held_bytes",
            "Bytes of the memory budget held now by upload bodies, fetched photos and decodes",
            held.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            stages,
            refused,
            fetches,
            errors,
            connections_refused,
            items,
            held,
        }
    }

    /// One answered request.
    fn request(&self, route: &str, method: &str, status: StatusCode, took: std::time::Duration) {
        let labels = RequestLabels {
            route: route.to_string(),
            method: method.to_string(),
            status: status.as_u16().to_string(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&RouteLabels { route: route.to_string() })
            .observe(took.as_secs_f64());
        let refusal = match status {
            StatusCode::PAYLOAD_TOO_LARGE => Some("too_large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Some("not_an_image"),
            StatusCode::REQUEST_TIMEOUT => Some("timeout"),
            StatusCode::SERVICE_UNAVAILABLE => Some("busy"),
            _ => None,
        };
        if let Some(reason) = refusal {
            self.refused.get_or_create(&ReasonLabels { reason }).inc();
        }
        if status.is_client_error() {
            self.errors.get_or_create(&ReasonLabels { reason: "client" }).inc();
        } else if status == StatusCode::BAD_GATEWAY {
            // A photo's URL could not be fetched: the remote end failed, not this server.
            self.errors.get_or_create(&ReasonLabels { reason: "upstream" }).inc();
        } else if status.is_server_error() {
            self.errors.get_or_create(&ReasonLabels { reason: "server" }).inc();
        }
    }

    /// The stages of one search.
    pub(super) fn stages(&self, t: &crate::engine::Timing) {
        let rerank = t.rerank_ms.min(t.search_ms);
        for (stage, ms) in [
            ("decode", t.decode_ms),
            ("embed", t.embed_ms),
            ("search", t.search_ms - rerank),
            ("rerank", rerank),
        ] {
            self.stages.get_or_create(&StageLabels { stage }).observe(ms.max(0.0) / 1e3);
        }
    }

    /// One photo fetched by URL (`ok`), or not: `refused` (the URL's fault), `upstream`
    /// (the remote end failed), `busy` (the byte budget was spent).
    pub(super) fn fetched(&self, outcome: &'static str) {
        self.fetches.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// One connection closed as it arrived (its address's share or every allowance full).
    pub(super) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    fn encode(&self, items: usize, held: u64) -> Result<String, std::fmt::Error> {
        self.items.set(i64::try_from(items).unwrap_or(i64::MAX));
        self.held.set(i64::try_from(held).unwrap_or(i64::MAX));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Counts every request by its route (the pattern, not the URL: ids would make a series
/// per item) and status, and times it.
pub(super) async fn track(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    // A client may send any method name: only the standard ones become series of their
    // own, so that made-up ones cannot grow the exposition without bound.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m.to_string(),
        _ => "other".to_string(),
    };
    let t0 = Instant::now();
    let res = next.run(req).await;
    state.metrics.request(&route, &method, res.status(), t0.elapsed());
    res
}

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, AppError> {
    let items = super::items::on_engine(&state, |e| e.len()).await?;
    let text = state
        .metrics
        .encode(items, state.budget.used())
        .map_err(|e| AppError::Internal(format!("metrics could not be written: {e}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        text,
    )
        .into_response())
}
