//! The searchable, in-memory form of an index: an immutable snapshot of segments (dense
//! matrices of unit vectors with their ids and metadata), the set of live item keys, and
//! the search planner.
//!
//! Filters are resolved to a bitmap of keys (facet bitmaps) *before* any vector is
//! compared, so a filter that keeps 1% of the catalogue still returns k matching items,
//! not the matching few among the k nearest. The planner compares every candidate exactly
//! while there are fewer than [`ANN_MIN_CANDIDATES`], or when a filter keeps less than
//! 1/[`ANN_MIN_SELECTIVITY`] of the index (the exact scan then costs only the matches);
//! otherwise it asks the store, when the store searches where it keeps the vectors (a
//! Milvus collection, [`remote`]), or scans the items of the partition cells nearest to
//! the query ([`partition`]). It falls back to exact search when the index has no
//! partition or the probed cells (or the store) hold fewer than k matches.
//!
//! Live updates never touch a snapshot: [`VectorIndex::with_changes`] makes the next one,
//! sharing every segment it does not merge, so readers holding the old one are never
//! blocked and a write costs time in proportion to its own items (size-tiered merging:
//! each item is copied O(log n) times over its life). This module knows nothing of
//! images, models or HTTP.

mod filter;
pub mod partition;
mod plan;
mod remote;
mod segment;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use roaring::RoaringBitmap;

pub use filter::Filter;
pub use partition::{Cells, MAX_CELLS, Partition, cells_for};
pub use plan::{
    ANN_MIN_CANDIDATES, ANN_MIN_PROBES, ANN_MIN_SELECTIVITY, ANN_PROBE_SHARE, SearchMode, plan,
    probes_for,
};
use plan::{Probes, approximate};
pub use segment::{COMPACT_SCAN_MIN_ROWS, Item, Segment};

use crate::error::{Error, Result};
use crate::kernel::{self, Scored, TopK};
use crate::store::{ItemRecord, Store};

/// One search result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub metadata: BTreeMap<String, String>,
}

/// Visit every stored item, in id order. A vector of another dimension than `dim` fails
/// the walk, naming the first such item (checked as the store reads, reported after).
pub(crate) fn for_each_item(
    store: &dyn Store,
    dim: usize,
    f: &mut dyn FnMut(&str, &ItemRecord, &[f32]),
) -> Result<()> {
    let mut bad_dim = None;
    store.for_each(&mut |id, record, v| {
        if v.len() == dim {
            f(id, record, v);
        } else {
            bad_dim.get_or_insert((id.to_string(), v.len()));
        }
    })?;
    match bad_dim {
        Some((id, got)) => {
            Err(crate::store::StoreError::DimensionMismatch { id, expected: dim, got }.into())
        }
        None => Ok(()),
    }
}

/// A filter keeping fewer than one row in this many of a segment is scanned row by row
/// (cost in proportion to the matches); broader ones scan the segment with a mask.
const SPARSE_FILTER_RATIO: u64 = 8;

/// Every live item of an index, as an immutable snapshot.
#[derive(Debug, Default)]
pub struct VectorIndex {
    dim: usize,
    /// Ascending, disjoint key ranges.
    segments: Vec<Arc<Segment>>,
    alive: RoaringBitmap,
    /// The approximate index, when the store holds a partition.
    cells: Option<Cells>,
    /// The store's partition generation this snapshot was loaded at.
    generation: u64,
    /// The store's version (committed batches) this snapshot holds everything of.
    version: u64,
    /// Items per value of a metadata column, computed once per column and snapshot.
    counts: ValueCounts,
    /// The store approximate searches go to, when it searches itself.
    remote: Option<remote::Remote>,
}

/// Per column: lower-cased value → live items holding it.
#[derive(Debug, Default)]
struct ValueCounts(std::sync::Mutex<HashMap<String, Arc<HashMap<String, u64>>>>);

impl VectorIndex {
    /// Read every item of `store` into memory. Items of a v1 index have no stored key;
    /// they get their place in id order, as the upgrade to v2 gives them.
    pub fn load(store: &dyn Store, dim: usize) -> Result<Self> {
        // Generation and version first: a partition replaced or items written meanwhile
        // only make this snapshot look older than it is (and be loaded again).
        let generation = store.partition_generation()?;
        let version = store.version()?;
        let partition = store.centroids()?.and_then(|c| Partition::from_centroids(dim, c));
        let mut segment = Segment::empty(dim);
        let mut place = 0u32;
        for_each_item(store, dim, &mut |id, record, v| {
            let key = record.key.unwrap_or(place);
            place += 1;
            segment.push(key, id.to_string(), record.clone(), v);
        })?;
        segment.finish();
        let alive: RoaringBitmap = segment.keys().iter().copied().collect();
        let cells = partition.map(|p| {
            let placed = segment
                .keys()
                .iter()
                .enumerate()
                .map(|(r, &key)| (key, segment.record(r).cell, segment.vector(r)));
            Cells::new(p, placed)
        });
        let segments = if segment.is_empty() { Vec::new() } else { vec![Arc::new(segment)] };
        Ok(Self {
            dim,
            segments,
            alive,
            cells,
            generation,
            version,
            counts: ValueCounts::default(),
            remote: None,
        })
    }

    /// An index of `items` (one segment).
    pub fn from_items(dim: usize, items: Vec<Item>) -> Self {
        let alive: RoaringBitmap = items.iter().map(|i| i.key).collect();
        let segment = Segment::new(dim, items);
        let segments = if segment.is_empty() { Vec::new() } else { vec![Arc::new(segment)] };
        Self {
            dim,
            segments,
            alive,
            cells: None,
            generation: 0,
            version: 0,
            counts: ValueCounts::default(),
            remote: None,
        }
    }

    /// The next snapshot: `added` items (keys above every key here) in, `removed` keys
    /// out. Shares every segment it does not merge.
    pub fn with_changes(&self, added: Vec<Item>, removed: &[u32]) -> Self {
        let cells = self.cells.as_ref().map(|c| {
            let gone: Vec<(u32, Option<u32>)> =
                removed.iter().map(|&k| (k, self.record(k).and_then(|r| r.cell))).collect();
            let new: Vec<(u32, Option<u32>, &[f32])> =
                added.iter().map(|i| (i.key, i.record.cell, i.vector.as_slice())).collect();
            c.with_changes(&new, &gone)
        });
        let mut alive = self.alive.clone();
        for k in removed {
            alive.remove(*k);
        }
        let mut segments = self.segments.clone();
        let ordered = match (added.iter().map(|i| i.key).min(), self.alive.max()) {
            (Some(lo), Some(hi)) => lo > hi,
            _ => true,
        };
        for i in &added {
            alive.insert(i.key);
        }
        if !added.is_empty() {
            segments.push(Arc::new(Segment::new(self.dim, added)));
        }
        if !ordered {
            // Keys out of order (not something the store does): one segment keeps lookups right.
            let parts: Vec<&Segment> = segments.iter().map(|s| &**s).collect();
            segments = vec![Arc::new(Segment::merge(&parts, &alive))];
        }
        // Merge the newest segment into the one before while it is at least half its size,
        // and compact any segment that is mostly dead rows.
        while segments.len() >= 2 {
            let n = segments.len();
            if segments[n - 1].len() * 2 < segments[n - 2].len() {
                break;
            }
            let merged = Segment::merge(&[&segments[n - 2], &segments[n - 1]], &alive);
            segments.truncate(n - 2);
            segments.push(Arc::new(merged));
        }
        for s in &mut segments {
            if s.key_set().intersection_len(&alive) * 2 < s.len() as u64 {
                *s = Arc::new(Segment::merge(&[s], &alive));
            }
        }
        segments.retain(|s| !s.is_empty());
        Self {
            dim: self.dim,
            segments,
            alive,
            cells,
            generation: self.generation,
            version: self.version,
            counts: ValueCounts::default(),
            remote: self.remote.clone(),
        }
    }

    /// The store's partition generation this snapshot's cells come from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The store's version this snapshot is complete up to (see [`Store::version`]).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// This snapshot, marked as holding everything of the store's `version` (the writer
    /// that made it knows whether its own batch was the only one since).
    pub fn at_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    /// The partition new items are placed in, when the index has one.
    pub fn partition(&self) -> Option<&Partition> {
        self.cells.as_ref().map(Cells::partition)
    }

    /// The cells of the approximate index, when the index has a partition.
    pub fn cells(&self) -> Option<&Cells> {
        self.cells.as_ref()
    }

    pub fn len(&self) -> usize {
        self.alive.len() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.alive.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Segments in this snapshot (merging keeps this O(log n)).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Live keys, ascending (the order items were added in).
    pub fn keys(&self) -> impl Iterator<Item = u32> + '_ {
        self.alive.iter()
    }

    fn locate(&self, key: u32) -> Option<(&Segment, usize)> {
        if !self.alive.contains(key) {
            return None;
        }
        let i = self.segments.partition_point(|s| s.last_key().is_some_and(|l| l < key));
        let seg = self.segments.get(i)?;
        seg.row_of_key(key).map(|r| (&**seg, r))
    }

    /// The key of the live item `id`.
    /// The live item named `id`: as given, or else by its NFC form (items written
    /// through `add` are stored in NFC, so `café` typed decomposed finds them; an item
    /// indexed from a decomposed file name is found as given).
    pub fn key_of(&self, id: &str) -> Option<u32> {
        self.key_of_exact(id).or_else(|| {
            use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
            match is_nfc_quick(id.chars()) {
                IsNormalized::Yes => None,
                _ => self.key_of_exact(&id.nfc().collect::<String>()),
            }
        })
    }

    fn key_of_exact(&self, id: &str) -> Option<u32> {
        // Newest first: a replaced item's old row is dead, its new one is later.
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.row_of(id).map(|r| s.key(r)))
            .filter(|k| self.alive.contains(*k))
    }

    pub fn id(&self, key: u32) -> Option<&str> {
        self.locate(key).map(|(s, r)| s.id(r))
    }

    pub fn record(&self, key: u32) -> Option<&ItemRecord> {
        self.locate(key).map(|(s, r)| s.record(r))
    }

    pub fn metadata(&self, key: u32) -> Option<&BTreeMap<String, String>> {
        self.locate(key).map(|(s, r)| s.metadata(r))
    }

    pub fn vector(&self, key: u32) -> Option<&[f32]> {
        self.locate(key).map(|(s, r)| s.vector(r))
    }

    pub fn hit(&self, key: u32, score: f32) -> Option<Hit> {
        self.locate(key).map(|(s, r)| Hit {
            id: s.id(r).to_string(),
            score,
            metadata: s.metadata(r).clone(),
        })
    }

    /// One segment holding every live item, for whole-matrix work (evaluation,
    /// benchmarks); shared, not copied, when the snapshot already is one.
    pub fn compacted(&self) -> Arc<Segment> {
        match self.segments.as_slice() {
            [only] if only.len() == self.len() => only.clone(),
            _ => {
                let parts: Vec<&Segment> = self.segments.iter().map(|s| &**s).collect();
                Arc::new(Segment::merge(&parts, &self.alive))
            }
        }
    }

    /// How many live items hold each value (lower-cased) of `column`.
    pub fn value_counts(&self, column: &str) -> Arc<HashMap<String, u64>> {
        let cached = self.counts.0.lock().ok().and_then(|c| c.get(column).cloned());
        if let Some(c) = cached {
            return c;
        }
        let mut counts: HashMap<String, u64> = HashMap::new();
        for s in &self.segments {
            for (value, keys) in s.facet_values(column).into_iter().flatten() {
                let n = keys.intersection_len(&self.alive);
                if n > 0 {
                    *counts.entry(value.clone()).or_insert(0) += n;
                }
            }
        }
        let counts = Arc::new(counts);
        if let Ok(mut c) = self.counts.0.lock() {
            c.insert(column.to_string(), counts.clone());
        }
        counts
    }

    /// Keys of the live items passing `filter` (`None`: no filter, every item).
    pub fn filter_keys(&self, filter: &Filter) -> Option<RoaringBitmap> {
        if filter.is_empty() {
            return None;
        }
        let mut keys = RoaringBitmap::new();
        for s in &self.segments {
            keys |= filter.keys_in(s);
        }
        keys &= &self.alive;
        Some(keys)
    }

    /// Nearest live items to `query` among those passing `filter`, `exclude` left out.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter,
        exclude: Option<u32>,
        mode: SearchMode,
    ) -> Result<Vec<Hit>> {
        if query.len() != self.dim {
            return Err(Error::BadParameter {
                name: "query",
                message: format!(
                    "vector has {} dimensions, the index has {}",
                    query.len(),
                    self.dim
                ),
            });
        }
        let candidates = self.filter_keys(filter);
        let mut n = candidates.as_ref().map_or(self.len(), |c| c.len() as usize);
        if exclude
            .is_some_and(|e| candidates.as_ref().map_or(self.alive.contains(e), |c| c.contains(e)))
        {
            n -= 1;
        }
        if self.remote.is_some()
            && approximate(n, self.len(), mode)
            && let Some(found) = self.search_remote(query, k, filter, candidates.as_ref(), exclude)
            && found.len() >= k.min(n)
        {
            return Ok(found);
        }
        let cells = self.cells.as_ref();
        let probes = plan(n, self.len(), mode, cells.map(|c| c.partition().cells()));
        if let (Some(cells), Some(probes)) = (cells, probes) {
            let found = self.search_in_cells(
                cells,
                query,
                k,
                candidates.as_ref(),
                exclude,
                Probes::Adaptive(probes),
            );
            if found.len() >= k.min(n) {
                return Ok(found);
            }
        }
        Ok(self.search_exact(query, k, candidates.as_ref(), exclude))
    }

    /// The approximate search with `probes` cells (`None` without a partition); fewer
    /// than k results when the probed cells hold fewer matching items. For benchmarks.
    pub fn search_probes(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter,
        probes: usize,
    ) -> Option<Vec<Hit>> {
        let cells = self.cells.as_ref()?;
        let candidates = self.filter_keys(filter);
        Some(self.search_in_cells(
            cells,
            query,
            k,
            candidates.as_ref(),
            None,
            Probes::Fixed(probes),
        ))
    }

    /// The items of the cells nearest to the query, ranked by their i8 codes, then the
    /// best re-scored exactly; items no cell holds are compared exactly.
    fn search_in_cells(
        &self,
        cells: &Cells,
        query: &[f32],
        k: usize,
        candidates: Option<&RoaringBitmap>,
        exclude: Option<u32>,
        probes: Probes,
    ) -> Vec<Hit> {
        let keep = |key: u32| Some(key) != exclude && candidates.is_none_or(|c| c.contains(key));
        let approx = match probes {
            Probes::Adaptive(n) => cells.scan_adaptive(query, n, kernel::rerank_depth(k), keep),
            Probes::Fixed(n) => cells.scan(query, n, kernel::rerank_depth(k), keep),
        };
        let mut top = TopK::new(k);
        for s in approx.into_sorted() {
            if let Some(v) = self.vector(s.row as u32) {
                top.push(Scored { row: s.row, score: kernel::dot(v, query) });
            }
        }
        if cells.unplaced() > 0 {
            let mut keys = cells.unplaced_keys() & &self.alive;
            if let Some(c) = candidates {
                keys &= c;
            }
            top = top.merge(self.top_exact(query, k, Some(&keys), exclude));
        }
        self.hits(top.into_sorted())
    }

    fn hits(&self, scored: Vec<Scored>) -> Vec<Hit> {
        scored.into_iter().filter_map(|s| self.hit(s.row as u32, s.score)).collect()
    }

    /// Compare the query with every candidate.
    fn search_exact(
        &self,
        query: &[f32],
        k: usize,
        candidates: Option<&RoaringBitmap>,
        exclude: Option<u32>,
    ) -> Vec<Hit> {
        self.hits(self.top_exact(query, k, candidates, exclude).into_sorted())
    }

    /// Exact top-k over every segment, rows as keys.
    fn top_exact(
        &self,
        query: &[f32],
        k: usize,
        candidates: Option<&RoaringBitmap>,
        exclude: Option<u32>,
    ) -> TopK {
        self.segments.iter().map(|s| self.scan_segment(s, query, k, candidates, exclude)).fold(
            TopK::new(k),
            |mut acc, part| {
                for s in part {
                    acc.push(s);
                }
                acc
            },
        )
    }

    /// Exact top-k of one segment, as (key, score).
    fn scan_segment(
        &self,
        seg: &Segment,
        query: &[f32],
        k: usize,
        candidates: Option<&RoaringBitmap>,
        exclude: Option<u32>,
    ) -> Vec<Scored> {
        let allowed = match candidates {
            Some(c) => Some(c & seg.key_set()),
            None if seg.key_set().intersection_len(&self.alive) == seg.len() as u64 => None,
            None => Some(seg.key_set() & &self.alive),
        };
        let not_excluded = |r: usize| Some(seg.key(r)) != exclude;
        let full = |mask: Option<&[bool]>| {
            let keep = |r: usize| not_excluded(r) && mask.is_none_or(|m| m[r]);
            match seg.q8() {
                Some(q8) => kernel::top_k_i8(seg.matrix(), q8, seg.dim(), query, k, keep),
                None => kernel::top_k(seg.matrix(), seg.dim(), query, k, keep),
            }
        };
        let top = match allowed {
            None => full(None),
            Some(a) if a.len() * SPARSE_FILTER_RATIO < seg.len() as u64 => {
                let rows: Vec<usize> = a
                    .iter()
                    .filter_map(|key| seg.row_of_key(key))
                    .filter(|&r| not_excluded(r))
                    .collect();
                match seg.q8() {
                    Some(q8) => kernel::top_k_rows_i8(seg.matrix(), q8, seg.dim(), query, k, &rows),
                    None => kernel::top_k_rows(seg.matrix(), seg.dim(), query, k, &rows),
                }
            }
            Some(a) => {
                let mut mask = vec![false; seg.len()];
                for r in a.iter().filter_map(|key| seg.row_of_key(key)) {
                    mask[r] = true;
                }
                full(Some(&mask))
            }
        };
        top.into_iter().map(|s| Scored { row: seg.key(s.row) as usize, score: s.score }).collect()
    }
}

#[cfg(test)]
mod tests;
