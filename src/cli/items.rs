//! `lookalike add` and `lookalike remove`: live writes to an index.

use std::process::ExitCode;

use lookalike::embed::BackendKind;
use lookalike::engine::{Engine, NewItem};

use super::args::{AddArgs, RemoveArgs};

pub fn add(a: AddArgs) -> anyhow::Result<ExitCode> {
    let csv = a.metadata.as_deref().map(lookalike::catalog::Metadata::read_csv).transpose()?;
    // Photos and metadata are read (and a bad --id refused) before the model loads.
    let items = NewItem::from_files(&a.photos, a.id.as_deref(), csv.as_ref(), &a.set)?;
    let engine = Engine::open(&a.index, a.backend.backend)?;
    let report = engine.add_items(items)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "added {}, replaced {}; the index holds {} items ({:.2} s)",
            report.added.len(),
            report.replaced.len(),
            report.total_items,
            report.seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn remove(a: RemoveArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::open(&a.index, BackendKind::Auto)?;
    let report = engine.remove_items(&a.ids)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "removed {}; the index holds {} items ({:.2} s)",
            report.removed.len(),
            report.total_items,
            report.seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}
