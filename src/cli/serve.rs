//! `lookalike serve`: open the index, then serve the page and the API until Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use lookalike::engine::Engine;
use lookalike::server::{self, ServeOptions};

use super::args::ServeArgs;

pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut opts = ServeOptions::new(a.catalog, a.max_upload_mb, a.max_inflight, a.admin_token)?;
    opts.fetch.allow = a.fetch_allow;
    opts.follow_interval =
        (a.follow_interval > 0.0).then(|| std::time::Duration::from_secs_f64(a.follow_interval));
    let engine = Engine::open(&a.index, a.backend.backend)?;
    eprintln!(
        "serving {} items ({}, {}) on http://{}",
        engine.index().len(),
        engine.info().model.name,
        engine.embedder().backend_name(),
        a.addr
    );
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(server::serve(engine, a.addr, opts))
        .with_context(|| format!("serving on {}", a.addr))?;
    Ok(ExitCode::SUCCESS)
}
