//! The scale run's catalogue (`lookalike bench fill`): a new index grown to a given size
//! from a real one without embedding a photo, so that a million-item collection can be
//! measured on a machine that could not embed a million photos.
//!
//! The real items are copied as they are; the rest are copies of them drawn near their
//! vector (noise of relative size `sigma`, renormalised, as [`super::synthesize`] does)
//! with the source's metadata, so filters, facets and category ranking see the
//! catalogue's own distribution. Everything is written through the destination's
//! [`Store`](crate::store::Store), the path `index` and the API write through.

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::location::{Location, file_hash};
use crate::milvus::VectorIndexKind;
use crate::store::{Change, IndexInfo, ItemRecord};

/// What to write.
#[derive(Debug, Clone)]
pub struct FillOptions {
    /// Items in the new index, the source's included (the first ones, in id order, when
    /// fewer).
    pub count: usize,
    /// Relative size of a copy's distance from its source vector.
    pub sigma: f32,
    /// Items per write.
    pub batch: usize,
    /// The vector index a new collection gets (`None`: HNSW).
    pub milvus_index: Option<VectorIndexKind>,
    /// Print progress on stderr.
    pub progress: bool,
}

/// What was written, and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct FillReport {
    pub items: usize,
    /// Items copied from the source as they are.
    pub real: usize,
    /// Items drawn near them.
    pub synthetic: usize,
    pub writes: usize,
    /// Writing every batch.
    pub write_seconds: f64,
    /// The store's flush after (for Milvus: sealing, and waiting for the vector index).
    pub flush_seconds: f64,
    pub seconds: f64,
    pub items_per_second: f64,
}

/// One item of the source.
struct Source {
    id: String,
    record: ItemRecord,
    vector: Vec<f32>,
}

/// Write a new index at `into` holding `opts.count` items grown from the index at `from`.
/// `into` must not hold an index: nothing that exists is overwritten.
pub fn fill(from: &Location, into: &Location, opts: &FillOptions) -> Result<FillReport> {
    let start = Instant::now();
    if opts.count == 0 {
        return Err(Error::BadParameter { name: "count", message: "must be at least 1".into() });
    }
    if !(opts.sigma.is_finite() && opts.sigma >= 0.0) {
        return Err(Error::BadParameter {
            name: "sigma",
            message: format!("{} is not a distance (give a number ≥ 0)", opts.sigma),
        });
    }
    // Before the source is opened: the two may be one folder, which opens once at a time.
    if let Ok(store) = into.open_existing()
        && store.info()?.is_some()
    {
        return Err(Error::BadParameter {
            name: "into",
            message: format!("{into} holds an index already; bench fill writes a new one"),
        });
    }
    let source = from.open(None)?;
    let mut items = Vec::new();
    source.store.for_each(&mut |id, record, vector| {
        items.push(Source {
            id: id.to_string(),
            // Keys and cells are the destination's to give.
            record: ItemRecord { key: None, cell: None, ..record.clone() },
            vector: vector.to_vec(),
        });
    })?;
    if items.is_empty() {
        return Err(Error::BadParameter {
            name: "index",
            message: format!("{from} holds no item to grow a catalogue from"),
        });
    }
    items.sort_by(|a, b| a.id.cmp(&b.id));
    items.truncate(opts.count);
    let known: HashSet<&str> = items.iter().map(|s| s.id.as_str()).collect();

    // The destination's model is the source's, by name, and must be the same file.
    let name = source.info.model.name.clone();
    let found = crate::model::resolve(&name)?;
    if file_hash(&found.path)? != source.info.model_hash {
        return Err(Error::ModelMismatch { index: name.clone(), requested: found.spec.name });
    }
    let store = into.open_or_create_with(opts.milvus_index)?;
    let (model, model_hash) = into.adopt_model(None, Some(&name))?;
    let info = IndexInfo {
        format_version: crate::store::FORMAT_VERSION,
        model: model.spec,
        model_hash,
        ..source.info.clone()
    };

    let n = items.len();
    let batch = opts.batch.max(1);
    let (mut writes, mut done) = (0, 0);
    let write_start = Instant::now();
    while done < opts.count {
        let end = (done + batch).min(opts.count);
        let mut changes = Vec::with_capacity(end - done);
        for i in done..end {
            let src = &items[i % n];
            if i < n {
                changes.push(Change::Put {
                    id: src.id.clone(),
                    record: src.record.clone(),
                    vector: src.vector.clone(),
                });
                continue;
            }
            let copy = i / n;
            let id = format!("{}~{copy}", src.id);
            if known.contains(id.as_str()) {
                return Err(Error::BadParameter {
                    name: "index",
                    message: format!("its item {id:?} has the id a copy would get"),
                });
            }
            let hash = blake3::hash(format!("{}~{copy}", src.record.hash).as_bytes());
            changes.push(Change::Put {
                id,
                record: ItemRecord { hash: hash.to_hex().to_string(), ..src.record.clone() },
                vector: near(&src.vector, opts.sigma, i as u64),
            });
        }
        store.apply(Some(&info), &changes)?;
        writes += 1;
        done = end;
        if opts.progress && (writes % 50 == 0 || done == opts.count) {
            eprintln!(
                "{done} of {} items written ({:.0} s)",
                opts.count,
                write_start.elapsed().as_secs_f64()
            );
        }
    }
    let write_seconds = write_start.elapsed().as_secs_f64();
    let flush_start = Instant::now();
    store.flush()?;
    let flush_seconds = flush_start.elapsed().as_secs_f64();
    let seconds = start.elapsed().as_secs_f64();
    Ok(FillReport {
        items: opts.count,
        real: n.min(opts.count),
        synthetic: opts.count.saturating_sub(n),
        writes,
        write_seconds,
        flush_seconds,
        seconds,
        items_per_second: opts.count as f64 / seconds.max(f64::MIN_POSITIVE),
    })
}

/// A unit vector near `v`: [`super::jitter_into`], seeded by the item's place so that
/// any batch size writes the same catalogue.
fn near(v: &[f32], sigma: f32, place: u64) -> Vec<f32> {
    // SplitMix64 of the place: neighbouring places get unrelated streams.
    let mut z = place.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mut state = (z ^ (z >> 31)) | 1;
    let mut out = Vec::with_capacity(v.len());
    super::jitter_into(v, sigma, &mut state, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_a_unit_vector_near_its_source_and_the_same_for_the_same_place() {
        let v: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37).sin()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let v: Vec<f32> = v.iter().map(|x| x / norm).collect();
        let a = near(&v, 0.3, 7);
        let b = near(&v, 0.3, 7);
        let c = near(&v, 0.3, 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let unit = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((unit - 1.0).abs() < 1e-4, "{unit}");
        let cos: f32 = a.iter().zip(&v).map(|(x, y)| x * y).sum();
        assert!(cos > 0.8 && cos < 0.9999, "{cos}");
        let same = near(&v, 0.0, 3);
        assert!(same.iter().zip(&v).all(|(x, y)| (x - y).abs() < 1e-6));
    }
}
