//! The searchable, in-memory form of an index: an immutable snapshot of segments (dense
//! matrices of unit vectors with their ids and metadata), the set of live item keys, and
//! the search planner.
//!
//! Filters are resolved to a bitmap of keys (facet bitmaps) *before* any vector is
//! compared, so a filter that keeps 1% of the catalogue still returns k matching items,
//! not the matching few among the k nearest. The planner compares every candidate exactly
//! while there are fewer than [`ANN_MIN_CANDIDATES`], or when a filter keeps less than
//! 1/[`ANN_MIN_SELECTIVITY`] of the index (a graph walk then wanders through items the
//! filter rejects, while the exact scan costs only the matches); otherwise it asks the
//! store's HNSW graph. It falls back to exact search whenever the graph is missing, lags,
//! or finds fewer than k.
//!
//! Live updates never touch a snapshot: [`VectorIndex::with_changes`] makes the next one,
//! sharing every segment it does not merge, so readers holding the old one are never
//! blocked and a write costs time in proportion to its own items (size-tiered merging:
//! each item is copied O(log n) times over its life). This module knows nothing of
//! images, models or HTTP.

mod filter;
mod segment;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use roaring::RoaringBitmap;

pub use filter::Filter;
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

/// How a search compares vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Exact below [`ANN_MIN_CANDIDATES`] candidates, the ANN graph above.
    #[default]
    Auto,
    /// Compare every candidate.
    Exact,
    /// The ANN graph whenever it is up to date.
    Ann,
}

impl FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "exact" => Ok(Self::Exact),
            "ann" => Ok(Self::Ann),
            _ => Err(format!("unknown search mode '{s}' (auto, exact, ann)")),
        }
    }
}

/// From this many candidates on, `Auto` searches the HNSW graph instead of comparing
/// every candidate. Below it the exact scan (i8 + re-rank) is fast and perfect: 2–3.5 ms
/// at 44k, 4.6 ms at 100k, so about 10 ms here, while the graph, 1.5–3x faster at these
/// sizes, finds only 93–95% of the true top-10 when the catalogue holds many near-copies
/// of the same product (BENCHMARKS.md, "Scale").
pub const ANN_MIN_CANDIDATES: usize = 200_000;

/// A filter must keep at least one item in this many for `Auto` to use the graph: at 1%
/// of 100k, the graph restricted to the filter took 69 ms, the exact scan of the 1,000
/// matches 0.4 ms (BENCHMARKS.md).
pub const ANN_MIN_SELECTIVITY: usize = 10;

/// Breadth of an ANN search: the graph explores `max(ANN_EF, ANN_EF_PER_RESULT * k)`
/// candidates. Chosen on the 1M benchmark for recall@10 >= 0.99 (BENCHMARKS.md).
pub const ANN_EF: usize = 160;
pub const ANN_EF_PER_RESULT: usize = 8;

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
}

impl VectorIndex {
    /// Read every item of `store` into memory. Items of a v1 index have no stored key;
    /// they get their place in id order, as the upgrade to v2 gives them.
    pub fn load(store: &dyn Store, dim: usize) -> Result<Self> {
        let mut segment = Segment::empty(dim);
        let mut bad_dim = None;
        let mut place = 0u32;
        store.for_each(&mut |id, record, v| {
            let key = record.key.unwrap_or(place);
            place += 1;
            if v.len() != dim {
                bad_dim.get_or_insert((id.to_string(), v.len()));
                return;
            }
            segment.push(key, id.to_string(), record.clone(), v);
        })?;
        if let Some((id, got)) = bad_dim {
            return Err(
                crate::store::StoreError::DimensionMismatch { id, expected: dim, got }.into()
            );
        }
        segment.finish();
        let alive: RoaringBitmap = segment.keys().iter().copied().collect();
        let segments = if segment.is_empty() { Vec::new() } else { vec![Arc::new(segment)] };
        Ok(Self { dim, segments, alive })
    }

    /// An index of `items` (one segment).
    pub fn from_items(dim: usize, items: Vec<Item>) -> Self {
        let alive: RoaringBitmap = items.iter().map(|i| i.key).collect();
        let segment = Segment::new(dim, items);
        let segments = if segment.is_empty() { Vec::new() } else { vec![Arc::new(segment)] };
        Self { dim, segments, alive }
    }

    /// The next snapshot: `added` items (keys above every key here) in, `removed` keys
    /// out. Shares every segment it does not merge.
    pub fn with_changes(&self, added: Vec<Item>, removed: &[u32]) -> Self {
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
        Self { dim: self.dim, segments, alive }
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
    pub fn key_of(&self, id: &str) -> Option<u32> {
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
    /// `store` holds the ANN graph; without it search is exact.
    pub fn search(
        &self,
        store: Option<&dyn Store>,
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
        let ann = match mode {
            SearchMode::Exact => false,
            SearchMode::Ann => true,
            SearchMode::Auto => n >= ANN_MIN_CANDIDATES && n * ANN_MIN_SELECTIVITY >= self.len(),
        };
        if ann
            && let Some(store) = store
            && let Some(hits) = self.search_ann(store, query, k, candidates.as_ref(), exclude, n)?
        {
            return Ok(hits);
        }
        Ok(self.search_exact(query, k, candidates.as_ref(), exclude))
    }

    /// ANN candidates re-scored exactly; `None` when the graph cannot answer for this
    /// snapshot (none built, lagging, or short of the `min(k, n)` results exact search gives).
    fn search_ann(
        &self,
        store: &dyn Store,
        query: &[f32],
        k: usize,
        candidates: Option<&RoaringBitmap>,
        exclude: Option<u32>,
        n: usize,
    ) -> Result<Option<Vec<Hit>>> {
        let want = k + usize::from(exclude.is_some());
        let ef = ANN_EF.max(ANN_EF_PER_RESULT * want);
        let Some(found) = store.ann_search(query, want, ef, candidates)? else {
            return Ok(None);
        };
        let mut top = TopK::new(k);
        for (key, _) in found {
            if Some(key) == exclude {
                continue;
            }
            // Scores come from the snapshot's own vectors: the same numbers exact search gives.
            if let Some(v) = self.vector(key) {
                top.push(Scored { row: key as usize, score: kernel::dot(v, query) });
            }
        }
        let hits = self.hits(top.into_sorted());
        Ok((hits.len() >= k.min(n)).then_some(hits))
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
        let top = self
            .segments
            .iter()
            .map(|s| self.scan_segment(s, query, k, candidates, exclude))
            .fold(TopK::new(k), |mut acc, part| {
                for s in part {
                    acc.push(s);
                }
                acc
            });
        self.hits(top.into_sorted())
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
mod tests {
    use super::*;
    use crate::store::{Change, LmdbStore, MemoryStore};

    fn record(pairs: &[(&str, &str)]) -> ItemRecord {
        let mut r = ItemRecord::default();
        for (k, v) in pairs {
            r.metadata.insert(k.to_string(), v.to_string());
        }
        r
    }

    fn index() -> VectorIndex {
        let s = MemoryStore::new();
        let items = [
            ("a", [1.0, 0.0], "Watches"),
            ("b", [0.8, 0.6], "Shirts"),
            ("c", [0.0, 1.0], "watches"),
        ];
        let changes: Vec<Change> = items
            .iter()
            .map(|(id, v, t)| Change::Put {
                id: id.to_string(),
                record: record(&[("articleType", t)]),
                vector: v.to_vec(),
            })
            .collect();
        s.apply(None, &changes).unwrap();
        VectorIndex::load(&s, 2).unwrap()
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.id.as_str()).collect()
    }

    /// Deterministic unit vectors around `centres` cluster centres (like product photos).
    fn clustered(rows: usize, dim: usize, centres: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let c: Vec<Vec<f32>> = (0..centres).map(|_| (0..dim).map(|_| next()).collect()).collect();
        (0..rows)
            .map(|i| {
                let mut v: Vec<f32> = c[i % centres].iter().map(|x| x + 0.4 * next()).collect();
                crate::embed::normalise(&mut v).unwrap();
                v
            })
            .collect()
    }

    fn put(i: usize, v: &[f32]) -> Change {
        let bucket = if i % 100 == 7 { "rare" } else { "common" };
        let single = if i == 1234 { "yes" } else { "no" };
        Change::Put {
            id: format!("{i:06}"),
            record: record(&[
                ("bucket", bucket),
                ("single", single),
                ("parity", &format!("{}", i % 2)),
            ]),
            vector: v.to_vec(),
        }
    }

    fn info(dim: usize) -> crate::store::IndexInfo {
        crate::store::IndexInfo {
            format_version: crate::store::FORMAT_VERSION,
            model: crate::model::ModelSpec {
                name: "t".into(),
                file: "m.onnx".into(),
                input: "i".into(),
                output: "o".into(),
                layout: crate::model::Layout::Nchw,
                size: 8,
                resize: crate::model::ResizeMode::Pad,
                mean: [0.0; 3],
                std: [1.0; 3],
                dim,
            },
            model_hash: String::new(),
            dim,
            columns: vec!["bucket".into(), "single".into(), "parity".into()],
            catalog: None,
            colour_weight: 0.0,
        }
    }

    #[test]
    fn filter_returns_matching_items_even_when_far() {
        let idx = index();
        let cols = vec!["articleType".to_string()];
        let f = Filter::parse(&["articletype=WATCHES"], &cols).unwrap();
        let exact = SearchMode::Exact;
        let hits = idx.search(None, &[0.8, 0.6], 5, &f, None, exact).unwrap();
        assert_eq!(ids(&hits), vec!["a", "c"]);
        let none = Filter::parse(&["articleType=Socks"], &cols).unwrap();
        assert!(idx.search(None, &[0.8, 0.6], 5, &none, None, exact).unwrap().is_empty());
        let any = Filter::parse(&["articleType=Socks", "articleType=Shirts"], &cols).unwrap();
        assert_eq!(idx.search(None, &[1.0, 0.0], 5, &any, None, exact).unwrap().len(), 1);
    }

    #[test]
    fn bad_filters_are_named() {
        let cols = vec!["articleType".to_string()];
        assert!(matches!(Filter::parse(&["colour=red"], &cols), Err(Error::UnknownColumn { .. })));
        assert!(matches!(Filter::parse(&["nonsense"], &cols), Err(Error::BadFilter(_))));
    }

    #[test]
    fn exclude_and_wrong_dimension() {
        let idx = index();
        let a = idx.key_of("a").unwrap();
        let all = Filter::default();
        let hits = idx.search(None, &[1.0, 0.0], 1, &all, Some(a), SearchMode::Exact).unwrap();
        assert_eq!(hits[0].id, "b");
        assert!(idx.search(None, &[1.0, 0.0, 0.0], 1, &all, None, SearchMode::Exact).is_err());
    }

    #[test]
    fn large_index_search_equals_the_exact_reference() {
        // Above COMPACT_SCAN_MIN_ROWS the scan runs on i8 codes; results must not change,
        // whether the filter is broad (masked scan) or sparse (row list).
        let (dim, rows) = (16, COMPACT_SCAN_MIN_ROWS + 900);
        let vectors = clustered(rows, dim, 50, 42);
        let s = MemoryStore::new();
        let changes: Vec<Change> = vectors.iter().enumerate().map(|(i, v)| put(i, v)).collect();
        s.apply(None, &changes).unwrap();
        let idx = VectorIndex::load(&s, dim).unwrap();
        let seg = idx.compacted();
        assert!(seg.q8().is_some());
        let cols: Vec<String> = ["bucket", "single", "parity"].map(String::from).to_vec();
        for (spec, pass) in [
            ("parity=1", &(|i: usize| i % 2 == 1) as &dyn Fn(usize) -> bool),
            ("bucket=rare", &|i: usize| i % 100 == 7),
        ] {
            let f = Filter::parse(&[spec], &cols).unwrap();
            for qi in 0..20 {
                let q = seg.vector(qi * 37).to_vec();
                let got: Vec<String> = idx
                    .search(None, &q, 10, &f, None, SearchMode::Exact)
                    .unwrap()
                    .into_iter()
                    .map(|h| h.id)
                    .collect();
                let want: Vec<String> = kernel::top_k_scalar(seg.matrix(), dim, &q, 10, pass)
                    .iter()
                    .map(|s| seg.id(s.row).to_string())
                    .collect();
                assert_eq!(got, want, "{spec}, query {qi}");
            }
        }
    }

    #[test]
    fn live_changes_keep_segments_few_and_answers_exact() {
        let dim = 8;
        let vectors = clustered(3000, dim, 40, 7);
        let s = MemoryStore::new();
        let base: Vec<Change> =
            vectors[..2000].iter().enumerate().map(|(i, v)| put(i, v)).collect();
        s.apply(Some(&info(dim)), &base).unwrap();
        let mut idx = VectorIndex::load(&s, dim).unwrap();
        // 1,000 single adds and 300 removals, each a new snapshot.
        for (i, v) in vectors.iter().enumerate().skip(2000) {
            let keys = s.apply(None, &[put(i, v)]).unwrap();
            let Change::Put { id, record, vector } = put(i, v) else { unreachable!() };
            idx = idx.with_changes(vec![Item { key: keys[0], id, record, vector }], &[]);
            assert!(
                idx.segment_count() <= 2 + (i as f64).log2() as usize,
                "{} segments",
                idx.segment_count()
            );
            if i % 3 == 0 {
                let victim = format!("{:06}", i - 1500);
                let key = idx.key_of(&victim).unwrap();
                s.apply(None, &[Change::Delete { id: victim }]).unwrap();
                idx = idx.with_changes(Vec::new(), &[key]);
            }
        }
        assert_eq!(idx.len(), s.len().unwrap());
        // Same answers as an index loaded afresh from the store.
        let fresh = VectorIndex::load(&s, dim).unwrap();
        assert_eq!(fresh.segment_count(), 1);
        let cols: Vec<String> = ["bucket", "single", "parity"].map(String::from).to_vec();
        for spec in [None, Some("parity=0"), Some("bucket=rare")] {
            let f = spec.map_or(Filter::default(), |s| Filter::parse(&[s], &cols).unwrap());
            for q in vectors.iter().step_by(97) {
                let a = idx.search(None, q, 10, &f, None, SearchMode::Exact).unwrap();
                let b = fresh.search(None, q, 10, &f, None, SearchMode::Exact).unwrap();
                assert_eq!(ids(&a), ids(&b));
            }
        }
        // Removed ids are gone, and compaction gives one segment with the same items.
        assert!(idx.key_of("000501").is_none());
        assert_eq!(idx.compacted().len(), idx.len());
    }

    #[test]
    fn ann_graph_recall_and_filters_with_0_1_few_all_matches() {
        let (dim, rows) = (32, 4000);
        let vectors = clustered(rows, dim, 200, 3);
        let dir = tempfile::tempdir().unwrap();
        let s = LmdbStore::open(dir.path()).unwrap();
        let changes: Vec<Change> = vectors.iter().enumerate().map(|(i, v)| put(i, v)).collect();
        s.apply(Some(&info(dim)), &changes).unwrap();
        let idx = VectorIndex::load(&s, dim).unwrap();
        // Before the graph is linked, forcing ANN still answers (exactly).
        assert!(s.ann_search(&vectors[0], 5, 50, None).unwrap().is_none());
        s.build_ann().unwrap();
        let cols: Vec<String> = ["bucket", "single", "parity"].map(String::from).to_vec();
        let mut found = 0;
        let mut total = 0;
        for q in vectors.iter().skip(5).step_by(40) {
            let exact =
                idx.search(Some(&s), q, 10, &Filter::default(), None, SearchMode::Exact).unwrap();
            let ann =
                idx.search(Some(&s), q, 10, &Filter::default(), None, SearchMode::Ann).unwrap();
            assert_eq!(ann.len(), 10);
            total += exact.len();
            found += exact.iter().filter(|h| ann.iter().any(|a| a.id == h.id)).count();
            // Filters: none match, one matches, few (1%), all.
            for (spec, expect) in [("bucket=nothing", 0), ("single=yes", 1), ("bucket=rare", 10)] {
                let f = Filter::parse(&[spec], &cols).unwrap();
                let e = idx.search(Some(&s), q, 10, &f, None, SearchMode::Exact).unwrap();
                let a = idx.search(Some(&s), q, 10, &f, None, SearchMode::Ann).unwrap();
                assert_eq!(e.len(), expect, "{spec}");
                assert_eq!(a.len(), expect, "{spec}");
                assert!(a.iter().all(|h| f.matches(&h.metadata)), "{spec}");
            }
            let everything = Filter::parse(&["bucket=rare", "bucket=common"], &cols).unwrap();
            let a = idx.search(Some(&s), q, 10, &everything, None, SearchMode::Ann).unwrap();
            assert_eq!(a.len(), 10);
        }
        let recall = found as f64 / total as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
        // Scores of ANN hits are the exact cosines.
        let q = &vectors[11];
        let hit =
            &idx.search(Some(&s), q, 1, &Filter::default(), None, SearchMode::Ann).unwrap()[0];
        let v = idx.vector(idx.key_of(&hit.id).unwrap()).unwrap();
        assert_eq!(hit.score, kernel::dot(v, q));
    }

    /// A store that counts the graph searches it is asked for.
    struct Counting(MemoryStore, std::sync::atomic::AtomicUsize);

    impl Store for Counting {
        fn info(&self) -> Result<Option<crate::store::IndexInfo>, crate::store::StoreError> {
            self.0.info()
        }
        fn apply(
            &self,
            info: Option<&crate::store::IndexInfo>,
            changes: &[Change],
        ) -> Result<Vec<u32>, crate::store::StoreError> {
            self.0.apply(info, changes)
        }
        fn build_ann(&self) -> Result<(), crate::store::StoreError> {
            self.0.build_ann()
        }
        fn ann_search(
            &self,
            query: &[f32],
            count: usize,
            ef: usize,
            candidates: Option<&RoaringBitmap>,
        ) -> Result<Option<Vec<crate::store::AnnHit>>, crate::store::StoreError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.ann_search(query, count, ef, candidates)
        }
        fn get(
            &self,
            id: &str,
        ) -> Result<Option<(ItemRecord, Vec<f32>)>, crate::store::StoreError> {
            self.0.get(id)
        }
        fn len(&self) -> Result<usize, crate::store::StoreError> {
            self.0.len()
        }
        fn records(&self) -> Result<Vec<(String, ItemRecord)>, crate::store::StoreError> {
            self.0.records()
        }
        fn for_each(
            &self,
            f: &mut dyn FnMut(&str, &ItemRecord, &[f32]),
        ) -> Result<(), crate::store::StoreError> {
            self.0.for_each(f)
        }
    }

    #[test]
    fn auto_uses_the_graph_only_for_many_candidates_and_broad_filters() {
        let dim = 4;
        let vectors = clustered(ANN_MIN_CANDIDATES + 500, dim, 30, 9);
        let s = Counting(MemoryStore::new(), Default::default());
        let changes: Vec<Change> = vectors.iter().enumerate().map(|(i, v)| put(i, v)).collect();
        s.apply(Some(&info(dim)), &changes).unwrap();
        let idx = VectorIndex::load(&s, dim).unwrap();
        let cols: Vec<String> = ["bucket", "single", "parity"].map(String::from).to_vec();
        let calls = || s.1.load(std::sync::atomic::Ordering::Relaxed);
        let q = &vectors[3];
        let cases = [
            (None, SearchMode::Auto, 1),             // 200,500 candidates: the graph
            (Some("parity=1"), SearchMode::Auto, 0), // half of them: too few candidates
            (Some("bucket=rare"), SearchMode::Auto, 0), // 1%: exact over the matches
            (Some("bucket=rare"), SearchMode::Ann, 1), // forced
            (None, SearchMode::Exact, 0),
        ];
        for (spec, mode, want) in cases {
            let f = spec.map_or(Filter::default(), |s| Filter::parse(&[s], &cols).unwrap());
            let before = calls();
            let hits = idx.search(Some(&s), q, 10, &f, None, mode).unwrap();
            assert_eq!(hits.len(), 10);
            assert_eq!(calls() - before, want, "{spec:?} {mode:?}");
        }
    }
}
