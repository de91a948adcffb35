//! `lookalike search`: photos (or an indexed item) in, results out, one answer per query.

use std::process::ExitCode;

use anyhow::Context;
use lookalike::engine::{Engine, Query};

use super::args::SearchArgs;
use super::tables::print_answer;

pub fn run(a: SearchArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::open(&a.index, a.backend.backend)?;
    let query = Query {
        crop: a.crop,
        resize: a.query_resize,
        min_score: a.min_score,
        collapse: a.collapse,
        ..a.ranking.query(a.k, engine.filter(&a.filters)?)
    };
    if a.images.is_empty() && a.similar_to.is_none() {
        anyhow::bail!(lookalike::Error::BadParameter {
            name: "images",
            message: "give at least one photo, or --similar-to ID".into()
        });
    }
    if let Some(id) = a.similar_to {
        let answer = engine.similar_answer(&id, &query)?;
        print_answer(&id, &answer, false, a.json)?;
    }
    let mut failed = false;
    for path in &a.images {
        let bytes = lookalike::catalog::read_photo(path)
            .map_err(|source| lookalike::Error::Io { path: path.clone(), source })
            .with_context(|| format!("query {}", path.display()));
        let result = bytes.and_then(|b| Ok(engine.search_photo(&b, &query)?));
        match result {
            Ok(answer) => print_answer(&path.display().to_string(), &answer, true, a.json)?,
            Err(e) if a.images.len() > 1 => {
                // One bad photo among many must not hide the others' results.
                failed = true;
                let why = super::message(&e);
                eprintln!("error: {}: {why}", path.display());
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"query": path.display().to_string(), "error": why})
                    );
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
