//! `lookalike index` and `lookalike repartition`: build or refresh an index folder.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lookalike::ingest::{self, IndexOptions};

use super::args::{IndexArgs, RepartitionArgs};

pub fn index(a: IndexArgs) -> anyhow::Result<ExitCode> {
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    // First Ctrl-C: finish the batch in flight and commit; second: default action.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: committing the current batch, then stopping (Ctrl-C again to abort)"
        );
    });
    let opts = IndexOptions {
        metadata: a.metadata,
        model: a.model,
        backend: a.backend.backend,
        colour_weight: a.colour_weight,
        repartition: a.repartition,
        batch_size: a.batch_size,
        shard: a.shard,
        progress: !a.json,
        milvus_index: a.milvus_index,
        cancel: Some(cancel),
    };
    let report = ingest::index_catalog(&a.catalog, &a.index, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(if report.interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

pub fn repartition(a: RepartitionArgs) -> anyhow::Result<ExitCode> {
    let report = ingest::repartition(&a.index)?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "partition of {} cells trained; {} items moved ({:.1} s)",
            report.cells, report.placed, report.seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}
