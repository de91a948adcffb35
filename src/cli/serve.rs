//! `lookalike serve`: open the index, then serve the page and the API until Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use lookalike::embed::Parallelism;
use lookalike::server::{self, ServeOptions};

use super::args::ServeArgs;

pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let par = parallelism(&a);
    let mut opts = ServeOptions::new(a.catalog, a.max_upload_mb, a.admin_token)?;
    let seconds = std::time::Duration::from_secs_f64;
    opts.workers = a.workers;
    opts.queue = a.queue;
    opts.queue_wait = seconds(a.queue_wait);
    opts.header_timeout = seconds(a.header_timeout);
    opts.body_idle_timeout = seconds(a.idle_timeout);
    opts.body_grace = seconds(a.body_grace);
    opts.min_body_rate = a.min_upload_rate.saturating_mul(1024);
    opts.max_connections = a.max_connections;
    opts.reserved_connections = a.reserved_connections;
    opts.max_connections_per_address = a.max_connections_per_address;
    opts.listen_backlog = a.listen_backlog;
    opts.memory_budget = a.memory_budget_mb.saturating_mul(1024 * 1024);
    opts.max_fetches = a.max_fetches;
    opts.search_niceness = a.search_niceness;
    opts.fetch.allow = a.fetch_allow;
    opts.follow_interval =
        (a.follow_interval > 0.0).then(|| std::time::Duration::from_secs_f64(a.follow_interval));
    // Opened on a thread of lower priority: ONNX Runtime's threads, started here, inherit
    // it, so that inference gives way to the connection threads (`/healthz` answers at
    // once on a saturated server); those start later, from this thread, at its priority.
    let engine = std::thread::scope(|s| {
        s.spawn(|| {
            server::yield_to_connections(a.search_niceness);
            a.backend.open_held(&a.index, par, lookalike::engine::Residency::InStoreWherePossible)
        })
        .join()
    })
    .map_err(|_| anyhow::anyhow!("opening the index panicked"))??;
    eprintln!(
        "serving {} items, {} in memory ({}, {}) on http://{}",
        engine.len()?,
        engine.items_in_memory(),
        engine.info().model.name,
        engine.embedder().backend_name(),
        a.addr
    );
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(server::serve(engine, a.addr, opts))
        .with_context(|| format!("serving on {}", a.addr))?;
    Ok(ExitCode::SUCCESS)
}

/// How many model runs the server's searches may make at once, on how many threads each
/// (by default one per search worker, each on every core).
fn parallelism(a: &ServeArgs) -> Parallelism {
    let workers = if a.workers == 0 { lookalike::embed::cores() } else { a.workers };
    let sessions = if a.inference_sessions == 0 { workers } else { a.inference_sessions };
    let mut par = Parallelism::per_worker(sessions);
    if a.inference_threads > 0 {
        par.threads = a.inference_threads;
    }
    par
}
