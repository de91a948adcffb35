//! `lookalike bench`: runs the library's measurements and prints one JSON line each.

use std::path::PathBuf;

use anyhow::Context;
use lookalike::bench;
use lookalike::embed::BackendKind;
use lookalike::engine::{Engine, Query};
use lookalike::location::Location;

use super::args::BenchCommand;

pub fn run(what: BenchCommand) -> anyhow::Result<()> {
    match what {
        BenchCommand::Stages { catalog, limit, model, batch_size, backend } => {
            let scan = lookalike::catalog::scan(&catalog)?;
            let files: Vec<PathBuf> = scan.photos.into_iter().take(limit).map(|p| p.path).collect();
            let m = lookalike::model::resolve(&model)?;
            let embedder = lookalike::embed::Embedder::new(&m, backend.backend)?;
            let scratch = tempfile_dir()?;
            let r = bench::stages(&files, &embedder, batch_size, &scratch);
            let _ = std::fs::remove_dir_all(&scratch);
            println!("{}", serde_json::to_string(&r?)?);
        }
        BenchCommand::Search { index, queries, k, scales, batch } => {
            let engine = Engine::open(&index, BackendKind::Auto)?;
            let idx = engine.index().compacted();
            let dim = idx.dim();
            anyhow::ensure!(!idx.is_empty(), "the index is empty");
            let q = bench_queries(&idx, queries);
            let mut sizes = vec![idx.len()];
            sizes.extend(scales);
            for size in sizes {
                let before = bench::rss_bytes();
                let matrix = bench::synthesize(idx.matrix(), dim, size, 0.3);
                let r = bench::search_latency(&matrix, dim, &q, k, batch, before);
                println!("{}", serde_json::to_string(&r)?);
            }
        }
        BenchCommand::Ann { index, scale, queries, k, probes, scratch, sources } => {
            let engine = Engine::open(&index, BackendKind::Auto)?;
            let idx = engine.index().compacted();
            let dim = idx.dim();
            anyhow::ensure!(!idx.is_empty(), "the index is empty");
            let base = &idx.matrix()[..sources.unwrap_or(idx.len()).min(idx.len()) * dim];
            let q = bench_queries_from(base, dim, queries);
            let matrix = bench::synthesize(base, dim, scale, 0.3);
            drop(engine);
            let dir = match scratch {
                Some(d) => d,
                None => tempfile_dir()?,
            };
            anyhow::ensure!(
                !lookalike::store::LmdbStore::is_index(&dir),
                "{} already holds a store; give an empty folder",
                dir.display()
            );
            let r = bench::ann(matrix, dim, &q, k, &probes, &dir);
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", serde_json::to_string(&r?)?);
        }
        BenchCommand::Add { index, photos, count, single, backend } => {
            let scan = lookalike::catalog::scan(&photos)?;
            let files: Vec<PathBuf> = scan.photos.into_iter().take(count).map(|p| p.path).collect();
            let Some(folder) = index.folder() else {
                anyhow::bail!(
                    "bench add writes into a copy of an index folder; {index} is not one"
                );
            };
            let copy = tempfile_dir()?;
            lookalike::store::LmdbStore::copy_index(folder, &copy)?;
            let r = Engine::open(&Location::Folder(copy.clone()), backend.backend)
                .and_then(|engine| bench::add(&engine, &files, single));
            let _ = std::fs::remove_dir_all(&copy);
            println!("{}", serde_json::to_string(&r?)?);
        }
        BenchCommand::Fill { index, into, count, sigma, batch, milvus_index } => {
            let opts =
                bench::fill::FillOptions { count, sigma, batch, milvus_index, progress: true };
            let r = bench::fill::fill(&index, &into, &opts)?;
            println!("{}", serde_json::to_string(&r)?);
        }
        BenchCommand::Query { index, images, repeat, mode, trained, flip, one_pass, backend } => {
            anyhow::ensure!(!images.is_empty(), "give query photos");
            let engine = backend.open(&index, Default::default())?;
            let query = Query {
                trained: trained.trained(),
                mode: mode.mode(),
                flip: flip.flag(),
                one_pass: one_pass.flag(),
                ..Query::default()
            };
            let mut total = Vec::new();
            let (mut dec, mut emb, mut srch) = (Vec::new(), Vec::new(), Vec::new());
            for path in &images {
                let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
                for _ in 0..repeat.max(1) {
                    let t = std::time::Instant::now();
                    let timing = engine.search_photo(&bytes, &query)?.timing;
                    total.push(t.elapsed().as_secs_f64() * 1e3);
                    dec.push(timing.decode_ms);
                    emb.push(timing.embed_ms);
                    srch.push(timing.search_ms);
                }
            }
            println!(
                "{}",
                serde_json::json!({"items": engine.index().len(), "backend": engine.embedder().backend_name(),
                    "trained": query.trained, "mode": query.mode,
                    "total": bench::Latency::from_ms(total), "decode_preprocess": bench::Latency::from_ms(dec),
                    "embed": bench::Latency::from_ms(emb), "search": bench::Latency::from_ms(srch)})
            );
        }
    }
    Ok(())
}

/// Benchmark queries: catalogue vectors with noise, as a new photo of a known product.
pub fn bench_queries(idx: &lookalike::index::Segment, queries: usize) -> Vec<f32> {
    bench_queries_from(idx.matrix(), idx.dim(), queries)
}

/// [`bench_queries`] from the rows of a matrix.
pub fn bench_queries_from(matrix: &[f32], dim: usize, queries: usize) -> Vec<f32> {
    let rows = matrix.len() / dim;
    let step = (rows / queries.max(1)).max(1);
    let picked: Vec<f32> = (0..rows)
        .step_by(step)
        .take(queries)
        .flat_map(|r| matrix[r * dim..(r + 1) * dim].to_vec())
        .collect();
    let n = picked.len() / dim;
    let mut q = lookalike::bench::synthesize(&picked, dim, 2 * n, 0.3);
    q.drain(..n * dim);
    q
}

pub fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lookalike-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
