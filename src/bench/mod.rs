//! Speed and memory measurements behind `lookalike bench`: the indexing pipeline stage by
//! stage, exact search latency at the index's size and at synthetic scale, and memory per
//! item. Figures are printed as JSON so scripts can put them beside a reference.

pub mod fill;

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::kernel;
use crate::preprocess;

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub n: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn from_ms(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let at = |q: f64| {
            if n == 0 { 0.0 } else { v[((q * (n - 1) as f64).round() as usize).min(n - 1)] }
        };
        let mean = if n == 0 { 0.0 } else { v.iter().sum::<f64>() / n as f64 };
        Latency { n, p50_ms: at(0.5), p90_ms: at(0.9), p99_ms: at(0.99), mean_ms: mean }
    }
}

/// Resident memory of this process, in bytes (Linux; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Seconds spent in each stage of the indexing pipeline, each run on its own.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub images: usize,
    pub backend: String,
    pub batch: usize,
    pub read_s: f64,
    pub decode_s: f64,
    pub resize_normalise_s: f64,
    pub inference_s: f64,
    pub store_s: f64,
    /// Images per second of each stage alone.
    pub read_ips: f64,
    pub decode_ips: f64,
    pub resize_normalise_ips: f64,
    pub inference_ips: f64,
    pub store_ips: f64,
}

/// Time each stage of the pipeline over `files` (decode and resize use the rayon pool,
/// as indexing does; inference runs batches of `batch`).
pub fn stages(
    files: &[PathBuf],
    embedder: &Embedder,
    batch: usize,
    scratch: &Path,
) -> Result<StageReport> {
    if files.is_empty() {
        return Err(Error::BadParameter {
            name: "catalog",
            message: "no photos to measure".into(),
        });
    }
    let ips = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let t = Instant::now();
    let bytes: Vec<Vec<u8>> = files
        .iter()
        .map(|f| {
            std::fs::read(f).map_err(|source| Error::Io { action: "read", path: f.clone(), source })
        })
        .collect::<Result<_>>()?;
    let read_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let images: Vec<image::RgbImage> =
        bytes.par_iter().filter_map(|b| preprocess::decode(b).ok()).collect();
    let decode_s = t.elapsed().as_secs_f64();
    let n = images.len();
    let t = Instant::now();
    let spec = embedder.spec();
    let tensors: Vec<Vec<f32>> =
        images.par_iter().filter_map(|i| preprocess::tensor(i, spec, None).ok()).collect();
    let resize_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut vectors = Vec::with_capacity(n * spec.dim);
    for chunk in tensors.chunks(batch.max(1)) {
        let flat: Vec<f32> = chunk.concat();
        vectors.extend(embedder.embed_tensors(&flat, chunk.len())?);
    }
    let inference_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    {
        use crate::store::{Change, ItemRecord, LmdbStore, Store};
        let store = LmdbStore::open(scratch)?;
        let changes: Vec<Change> = vectors
            .chunks_exact(spec.dim)
            .enumerate()
            .map(|(i, v)| Change::Put {
                id: format!("{i:08}"),
                record: ItemRecord::default(),
                vector: v.to_vec(),
            })
            .collect();
        for c in changes.chunks(batch.max(1)) {
            store.apply(None, c)?;
        }
    }
    let store_s = t.elapsed().as_secs_f64();
    Ok(StageReport {
        images: n,
        backend: embedder.backend_name().to_string(),
        batch,
        read_s,
        decode_s,
        resize_normalise_s: resize_s,
        inference_s,
        store_s,
        read_ips: ips(files.len(), read_s),
        decode_ips: ips(n, decode_s),
        resize_normalise_ips: ips(n, resize_s),
        inference_ips: ips(n, inference_s),
        store_ips: ips(n, store_s),
    })
}

/// Exact search figures at one catalogue size.
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    pub items: usize,
    pub dim: usize,
    pub k: usize,
    /// Plain f32 scan, one query at a time.
    pub single: Latency,
    /// f16 scan with exact f32 re-ranking (what `search` does on large indexes).
    pub single_f16_rerank: Latency,
    /// Queries whose f16+re-rank top-k ids differ from the f32 scan's.
    pub f16_rerank_mismatches: usize,
    /// i8 scan (per-row scale) with exact f32 re-ranking.
    pub single_i8_rerank: Latency,
    pub i8_rerank_mismatches: usize,
    /// Per query, when `batch` queries are scored together (SGEMM) and ranked.
    pub batched_per_query_ms: f64,
    pub batch: usize,
    /// Resident memory the matrix added, per 1,000 items, in MB.
    pub mb_per_1000_items: f64,
}

/// Deterministic xorshift noise in [-1, 1).
fn noise(state: &mut u64) -> f32 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    ((*state >> 40) as f32 / (1u64 << 23) as f32) - 1.0
}

/// Grow `base` (unit rows of `dim`) to `target` rows: copies of real rows with Gaussian-ish
/// noise of relative size `sigma`, renormalised, so the distribution stays realistic.
pub fn synthesize(base: &[f32], dim: usize, target: usize, sigma: f32) -> Vec<f32> {
    let rows = base.len() / dim;
    let mut out = Vec::with_capacity(target * dim);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..target {
        let src = &base[(i % rows) * dim..(i % rows + 1) * dim];
        if i < rows {
            out.extend_from_slice(src);
            continue;
        }
        jitter_into(src, sigma, &mut state, &mut out);
    }
    out
}

/// Append a copy of the unit row `src` with noise of relative size `sigma` (the sum of
/// three uniform draws per component, from `state`), renormalised to unit length.
pub(crate) fn jitter_into(src: &[f32], sigma: f32, state: &mut u64, out: &mut Vec<f32>) {
    let scale = sigma / (src.len().max(1) as f32).sqrt() * 1.7;
    let start = out.len();
    out.extend(src.iter().map(|x| x + scale * (noise(state) + noise(state) + noise(state))));
    let v = &mut out[start..];
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
}

/// Measure exact top-k over `matrix` with `queries` (unit rows).
pub fn search_latency(
    matrix: &[f32],
    dim: usize,
    queries: &[f32],
    k: usize,
    batch: usize,
    rss_before: u64,
) -> SearchReport {
    let items = matrix.len() / dim;
    let mb =
        (rss_bytes().saturating_sub(rss_before)) as f64 / 1e6 / (items as f64 / 1000.0).max(1e-9);
    let nq = queries.len() / dim;
    // Warm-up: fault the matrix in.
    let _ = kernel::top_k(matrix, dim, &queries[..dim], k, |_| true);
    // Each query timed alone; also counted: top-k ids that differ from the f32 scan's.
    let timed = |search: &dyn Fn(&[f32]) -> Vec<kernel::Scored>| {
        let mut mismatches = 0;
        let ms: Vec<f64> = queries
            .chunks_exact(dim)
            .map(|q| {
                let t = Instant::now();
                let r = search(q);
                let ms = t.elapsed().as_secs_f64() * 1e3;
                let exact = kernel::top_k(matrix, dim, q, k, |_| true);
                if r.iter().map(|s| s.row).ne(exact.iter().map(|s| s.row)) {
                    mismatches += 1;
                }
                ms
            })
            .collect();
        (Latency::from_ms(ms), mismatches)
    };
    let (single, _) = timed(&|q| kernel::top_k(matrix, dim, q, k, |_| true));
    let half: Vec<half::f16> = matrix.iter().map(|x| half::f16::from_f32(*x)).collect();
    let (single_f16, mismatches) =
        timed(&|q| kernel::top_k_f16(matrix, &half, dim, q, k, |_| true));
    drop(half);
    let q8 = kernel::Int8Rows::quantise(matrix, dim);
    let (single_i8, mismatches_i8) = timed(&|q| kernel::top_k_i8(matrix, &q8, dim, q, k, |_| true));
    drop(q8);
    let b = batch.min(nq).max(1);
    let t = Instant::now();
    let scores = kernel::scores_batch(matrix, dim, &queries[..b * dim], b);
    let tops: Vec<Vec<kernel::Scored>> = scores
        .par_chunks(items)
        .map(|row| {
            let mut top = kernel::TopK::new(k);
            for (j, s) in row.iter().enumerate() {
                top.push(kernel::Scored { row: j, score: *s });
            }
            top.into_sorted()
        })
        .collect();
    std::hint::black_box(tops);
    let batched = t.elapsed().as_secs_f64() * 1e3 / b as f64;
    SearchReport {
        items,
        dim,
        k,
        single,
        single_f16_rerank: single_f16,
        f16_rerank_mismatches: mismatches,
        single_i8_rerank: single_i8,
        i8_rerank_mismatches: mismatches_i8,
        batched_per_query_ms: batched,
        batch: b,
        mb_per_1000_items: mb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_set() {
        let l = Latency::from_ms((1..=100).map(f64::from).collect());
        assert_eq!((l.n, l.p50_ms, l.p99_ms), (100, 51.0, 99.0));
        assert!((l.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!(Latency::from_ms(vec![]).n, 0);
    }

    #[test]
    fn synthetic_rows_are_unit_and_near_their_source() {
        let dim = 64;
        let mut base = vec![0.0f32; 3 * dim];
        for (i, x) in base.iter_mut().enumerate() {
            *x = ((i * 7919) % 13) as f32 - 6.0;
        }
        for r in base.chunks_exact_mut(dim) {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter_mut().for_each(|x| *x /= n);
        }
        let big = synthesize(&base, dim, 30, 0.3);
        assert_eq!(big.len(), 30 * dim);
        assert_eq!(&big[..3 * dim], &base[..], "real rows come first, unchanged");
        for (i, r) in big.chunks_exact(dim).enumerate().skip(3) {
            let norm: f32 = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
            let src = &base[(i % 3) * dim..(i % 3 + 1) * dim];
            let cos = kernel::dot_scalar(r, src);
            assert!(cos > 0.8 && cos < 0.9999, "row {i}: cosine {cos}");
        }
    }
}

/// ANN at scale: the partition of an LMDB store built over `matrix`, against exact search
/// through the same planner, unfiltered and with a filter keeping 1% of the items.
#[derive(Debug, Serialize)]
pub struct AnnReport {
    pub items: usize,
    pub dim: usize,
    pub k: usize,
    /// Writing items and vectors to the store (one transaction per 10,000).
    pub write_seconds: f64,
    /// Training the partition (k-means) and placing every item in its cell.
    pub partition_seconds: f64,
    pub cells: usize,
    /// Cells the planner's approximate search scans.
    pub probes: usize,
    /// Size of the store's file (items, vectors, centroids).
    pub disk_mb: f64,
    /// Growth of resident memory over loading the in-memory index, per 1,000 items.
    pub memory_mb_per_1000_items: f64,
    pub exact: Latency,
    pub ann: Latency,
    pub recall_at_k: f64,
    pub speedup_p50: f64,
    /// Recall and latency of the cell scan for other numbers of probed cells.
    pub probe_sweep: Vec<ProbePoint>,
    pub filtered_items: usize,
    pub filtered_exact: Latency,
    /// The default planner (exact over the filter's rows while they are few).
    pub filtered_auto: Latency,
    pub filtered_auto_recall: f64,
    /// The partition forced (`--ann`) with the filter as its candidates.
    pub filtered_ann: Latency,
    pub filtered_ann_recall: f64,
    /// Fewest results any filtered query returned (k expected).
    pub filtered_min_results: usize,
}

#[derive(Debug, Serialize)]
pub struct ProbePoint {
    pub probes: usize,
    pub recall_at_k: f64,
    pub latency: Latency,
}

/// Build the partition over `matrix` in a fresh store under `scratch`, then time searches.
pub fn ann(
    matrix: Vec<f32>,
    dim: usize,
    queries: &[f32],
    k: usize,
    probes: &[usize],
    scratch: &Path,
) -> Result<AnnReport> {
    use crate::index::{Filter, SearchMode, VectorIndex};
    use crate::model::{Layout, ModelSpec, ResizeMode};
    use crate::store::{Change, FORMAT_VERSION, IndexInfo, ItemRecord, LmdbStore, Store};
    let items = matrix.len() / dim;
    let store = LmdbStore::open(scratch)?;
    let spec = ModelSpec {
        name: "bench".into(),
        file: "none".into(),
        input: "input".into(),
        output: "output".into(),
        layout: Layout::Nchw,
        size: 1,
        resize: ResizeMode::Pad,
        mean: [0.0; 3],
        std: [1.0; 3],
        dim,
        query_size: None,
        heads: None,
        mask: None,
        close_match: None,
    };
    let info = IndexInfo {
        format_version: FORMAT_VERSION,
        model: spec,
        model_hash: String::new(),
        dim,
        columns: vec!["bucket".into()],
        catalog: None,
        colour_weight: 0.0,
    };
    store.apply(Some(&info), &[])?;
    let t = Instant::now();
    for (c, block) in matrix.chunks(10_000 * dim).enumerate() {
        let changes: Vec<Change> = block
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| {
                let n = c * 10_000 + i;
                let mut record = ItemRecord::default();
                record.metadata.insert("bucket".into(), format!("b{}", n % 100));
                Change::Put { id: format!("{n:08}"), record, vector: v.to_vec() }
            })
            .collect();
        store.apply(None, &changes)?;
    }
    // The store and the index hold the vectors from here on: keep one copy less.
    drop(matrix);
    let write_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let refreshed = crate::index::partition::refresh(&store, dim, false)?;
    let partition_seconds = t.elapsed().as_secs_f64();
    let disk_mb = crate::store::LmdbStore::disk_bytes(scratch) as f64 / 1e6;
    let before = rss_bytes();
    let index = VectorIndex::load(&store, dim)?;
    let memory = (rss_bytes().saturating_sub(before)) as f64 / 1e6 / (items as f64 / 1000.0);

    let ids = |hits: &[crate::Hit]| hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
    let recall = |got: &[String], want: &[String]| {
        want.iter().filter(|w| got.contains(w)).count() as f64 / want.len().max(1) as f64
    };
    let run = |filter: &Filter, mode: SearchMode| -> Result<(Latency, Vec<Vec<String>>)> {
        let mut ms = Vec::new();
        let mut out = Vec::new();
        for q in queries.chunks_exact(dim) {
            let t = Instant::now();
            let hits = index.search(q, k, filter, None, mode)?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            out.push(ids(&hits));
        }
        Ok((Latency::from_ms(ms), out))
    };
    let mean_recall = |got: &[Vec<String>], want: &[Vec<String>]| {
        got.iter().zip(want).map(|(g, w)| recall(g, w)).sum::<f64>() / want.len().max(1) as f64
    };
    let none = Filter::default();
    let (exact, exact_ids) = run(&none, SearchMode::Exact)?;
    let (ann, ann_ids) = run(&none, SearchMode::Ann)?;
    let mut probe_sweep = Vec::new();
    for &p in probes {
        let mut ms = Vec::new();
        let mut r = 0.0;
        for (q, want) in queries.chunks_exact(dim).zip(&exact_ids) {
            let t = Instant::now();
            let found = index.search_probes(q, k, &none, p).unwrap_or_default();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            r += recall(&ids(&found), want);
        }
        probe_sweep.push(ProbePoint {
            probes: p,
            recall_at_k: r / exact_ids.len().max(1) as f64,
            latency: Latency::from_ms(ms),
        });
    }
    let mut one_percent = Filter::default();
    one_percent.add("bucket", "b7");
    let filtered_items = index.filter_keys(&one_percent).map_or(0, |b| b.len() as usize);
    let (filtered_exact, fe_ids) = run(&one_percent, SearchMode::Exact)?;
    let (filtered_auto, fa_ids) = run(&one_percent, SearchMode::Auto)?;
    let (filtered_ann, fn_ids) = run(&one_percent, SearchMode::Ann)?;
    let filtered_min_results = fa_ids.iter().chain(&fn_ids).map(Vec::len).min().unwrap_or(0);
    Ok(AnnReport {
        items,
        dim,
        k,
        write_seconds,
        partition_seconds,
        cells: refreshed.cells,
        probes: crate::index::probes_for(refreshed.cells),
        disk_mb,
        memory_mb_per_1000_items: memory,
        speedup_p50: exact.p50_ms / ann.p50_ms.max(1e-9),
        recall_at_k: mean_recall(&ann_ids, &exact_ids),
        exact,
        ann,
        probe_sweep,
        filtered_items,
        filtered_exact,
        filtered_auto_recall: mean_recall(&fa_ids, &fe_ids),
        filtered_auto,
        filtered_ann_recall: mean_recall(&fn_ids, &fe_ids),
        filtered_ann,
        filtered_min_results,
    })
}

/// Live writes into an opened index: one batch, then single-item writes (the worst case:
/// each commits and publishes a snapshot on its own).
#[derive(Debug, Serialize)]
pub struct AddReport {
    pub items_before: usize,
    pub batch_items: usize,
    pub batch_seconds: f64,
    pub batch_ms_per_item: f64,
    /// One `add_items` call per photo.
    pub single: Latency,
    /// Removing the single-item adds again, one call each.
    pub remove_single: Latency,
    pub items_after: usize,
    pub segments_after: usize,
}

/// Add `photos[single..]` in one batch and `photos[..single]` one at a time.
pub fn add(engine: &crate::Engine, photos: &[PathBuf], single: usize) -> Result<AddReport> {
    use crate::engine::NewItem;
    let read = |i: usize, p: &PathBuf, tag: &str| -> Result<NewItem> {
        let photo = std::fs::read(p).map_err(|source| Error::Io {
            action: "read",
            path: p.clone(),
            source,
        })?;
        Ok(NewItem { id: format!("bench-{tag}-{i}"), photo, metadata: Default::default() })
    };
    let single = single.min(photos.len());
    let items_before = engine.index().len();
    let batch: Vec<NewItem> = photos[single..]
        .iter()
        .enumerate()
        .map(|(i, p)| read(i, p, "batch"))
        .collect::<Result<_>>()?;
    let batch_items = batch.len();
    let t = Instant::now();
    if !batch.is_empty() {
        engine.add_items(batch)?;
    }
    let batch_seconds = t.elapsed().as_secs_f64();
    let mut ms = Vec::new();
    let mut ids = Vec::new();
    for (i, p) in photos[..single].iter().enumerate() {
        let item = read(i, p, "single")?;
        ids.push(item.id.clone());
        let t = Instant::now();
        engine.add_items(vec![item])?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut rm = Vec::new();
    for id in ids {
        let t = Instant::now();
        engine.remove_items(&[id])?;
        rm.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let index = engine.index();
    Ok(AddReport {
        items_before,
        batch_items,
        batch_seconds,
        batch_ms_per_item: batch_seconds * 1e3 / batch_items.max(1) as f64,
        single: Latency::from_ms(ms),
        remove_single: Latency::from_ms(rm),
        items_after: index.len(),
        segments_after: index.segment_count(),
    })
}
