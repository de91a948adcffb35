//! The searchable, in-memory form of an index: one dense matrix of unit vectors, the ids
//! and metadata beside it, and metadata filters.
//!
//! Filters are resolved to a row mask *before* the scan, so a filter that keeps 1% of the
//! catalogue still returns k matching items, not the matching few among the k nearest.
//! This module knows nothing of images, models or HTTP.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::kernel;
use crate::store::{ItemRecord, Store};

/// One search result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub metadata: BTreeMap<String, String>,
}

/// Metadata conditions: values of one column are alternatives (OR), columns combine (AND).
/// Values compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    clauses: Vec<(String, Vec<String>)>,
}

impl Filter {
    /// Parse `column=value` strings against the index's known columns.
    pub fn parse<S: AsRef<str>>(specs: &[S], columns: &[String]) -> Result<Self> {
        let mut f = Filter::default();
        for s in specs {
            let s = s.as_ref();
            let (col, val) = s.split_once('=').ok_or_else(|| Error::BadFilter(s.to_string()))?;
            let (col, val) = (col.trim(), val.trim());
            if col.is_empty() {
                return Err(Error::BadFilter(s.to_string()));
            }
            let Some(known) = columns.iter().find(|c| c.eq_ignore_ascii_case(col)) else {
                return Err(Error::UnknownColumn {
                    column: col.to_string(),
                    known: columns.join(", "),
                });
            };
            f.add(known, val);
        }
        Ok(f)
    }

    /// Add an alternative value for `column`.
    pub fn add(&mut self, column: &str, value: &str) {
        match self.clauses.iter_mut().find(|(c, _)| c == column) {
            Some((_, vals)) => vals.push(value.to_lowercase()),
            None => self.clauses.push((column.to_string(), vec![value.to_lowercase()])),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    pub fn matches(&self, metadata: &BTreeMap<String, String>) -> bool {
        self.clauses.iter().all(|(col, vals)| {
            metadata.get(col).is_some_and(|v| {
                let v = v.to_lowercase();
                vals.contains(&v)
            })
        })
    }
}

/// From this many items on, search scans an i8 copy (a quarter of the memory traffic;
/// the scan is memory-bound) and re-ranks the candidates exactly in f32; below it the
/// plain f32 scan is as fast. Measured at 44k: same top-10 as the f32 scan on every
/// benchmark query, p50 3.5 ms against 8-10 ms (BENCHMARKS.md).
pub const COMPACT_SCAN_MIN_ROWS: usize = 8192;

/// All vectors of an index in one matrix, with their ids and metadata.
#[derive(Debug, Default)]
pub struct VectorIndex {
    dim: usize,
    ids: Vec<String>,
    metadata: Vec<BTreeMap<String, String>>,
    paths: Vec<String>,
    hashes: Vec<String>,
    data: Vec<f32>,
    /// i8 copy scanned first on large indexes (see `kernel::top_k_i8`).
    q8: Option<kernel::Int8Rows>,
    by_id: HashMap<String, usize>,
}

impl VectorIndex {
    /// Read every item of `store` into memory.
    pub fn load(store: &dyn Store, dim: usize) -> Result<Self> {
        let mut idx = VectorIndex { dim, ..Default::default() };
        let mut bad_dim = None;
        store.for_each(&mut |id, record, v| {
            if v.len() != dim {
                bad_dim.get_or_insert((id.to_string(), v.len()));
                return;
            }
            idx.push(id, record, v);
        })?;
        if let Some((id, got)) = bad_dim {
            return Err(
                crate::store::StoreError::DimensionMismatch { id, expected: dim, got }.into()
            );
        }
        if idx.len() >= COMPACT_SCAN_MIN_ROWS {
            idx.q8 = Some(kernel::Int8Rows::quantise(&idx.data, dim));
        }
        Ok(idx)
    }

    fn push(&mut self, id: &str, record: &ItemRecord, v: &[f32]) {
        self.by_id.insert(id.to_string(), self.ids.len());
        self.ids.push(id.to_string());
        self.metadata.push(record.metadata.clone());
        self.paths.push(record.path.clone());
        self.hashes.push(record.hash.clone());
        self.data.extend_from_slice(v);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn row_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn id(&self, row: usize) -> &str {
        &self.ids[row]
    }

    pub fn metadata(&self, row: usize) -> &BTreeMap<String, String> {
        &self.metadata[row]
    }

    /// Image path of a row, relative to the catalogue folder.
    pub fn path(&self, row: usize) -> &str {
        &self.paths[row]
    }

    /// Content hash of a row's photo (stable while the photo is unchanged).
    pub fn hash(&self, row: usize) -> &str {
        &self.hashes[row]
    }

    pub fn vector(&self, row: usize) -> &[f32] {
        &self.data[row * self.dim..(row + 1) * self.dim]
    }

    /// The whole matrix, row-major.
    pub fn matrix(&self) -> &[f32] {
        &self.data
    }

    /// Rows whose metadata passes `filter`, as a mask (`None`: every row).
    pub fn mask(&self, filter: &Filter) -> Option<Vec<bool>> {
        (!filter.is_empty()).then(|| self.metadata.iter().map(|m| filter.matches(m)).collect())
    }

    /// Exact cosine top-k among rows passing `filter`, leaving out `exclude`.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: &Filter,
        exclude: Option<usize>,
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
        let mask = self.mask(filter);
        let keep = |r: usize| Some(r) != exclude && mask.as_ref().is_none_or(|m| m[r]);
        let top = match &self.q8 {
            Some(q8) => kernel::top_k_i8(&self.data, q8, self.dim, query, k, keep),
            None => kernel::top_k(&self.data, self.dim, query, k, keep),
        };
        Ok(top.into_iter().map(|s| self.hit(s.row, s.score)).collect())
    }

    pub fn hit(&self, row: usize, score: f32) -> Hit {
        Hit { id: self.ids[row].clone(), score, metadata: self.metadata[row].clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Change, MemoryStore};

    fn index() -> VectorIndex {
        let s = MemoryStore::new();
        let items = [
            ("a", [1.0, 0.0], "Watches"),
            ("b", [0.8, 0.6], "Shirts"),
            ("c", [0.0, 1.0], "watches"),
        ];
        let changes: Vec<Change> = items
            .iter()
            .map(|(id, v, t)| {
                let mut record = ItemRecord::default();
                record.metadata.insert("articleType".into(), t.to_string());
                Change::Put { id: id.to_string(), record, vector: v.to_vec() }
            })
            .collect();
        s.apply(None, &changes).unwrap();
        VectorIndex::load(&s, 2).unwrap()
    }

    #[test]
    fn filter_returns_matching_items_even_when_far() {
        let idx = index();
        let cols = vec!["articleType".to_string()];
        let f = Filter::parse(&["articletype=WATCHES"], &cols).unwrap();
        let ids: Vec<String> =
            idx.search(&[0.8, 0.6], 5, &f, None).unwrap().into_iter().map(|h| h.id).collect();
        assert_eq!(ids, vec!["a", "c"]);
        let none = Filter::parse(&["articleType=Socks"], &cols).unwrap();
        assert!(idx.search(&[0.8, 0.6], 5, &none, None).unwrap().is_empty());
        let any = Filter::parse(&["articleType=Socks", "articleType=Shirts"], &cols).unwrap();
        assert_eq!(idx.search(&[1.0, 0.0], 5, &any, None).unwrap().len(), 1);
    }

    #[test]
    fn large_index_search_equals_the_exact_reference() {
        // Above COMPACT_SCAN_MIN_ROWS the scan runs on i8 codes; results must not change.
        let (dim, rows) = (16, COMPACT_SCAN_MIN_ROWS + 900);
        let mut state = 42u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let s = MemoryStore::new();
        let changes: Vec<Change> = (0..rows)
            .map(|i| {
                let mut v: Vec<f32> = (0..dim).map(|_| next()).collect();
                crate::embed::normalise(&mut v).unwrap();
                let mut record = ItemRecord::default();
                record
                    .metadata
                    .insert("parity".into(), if i % 2 == 0 { "even" } else { "odd" }.into());
                Change::Put { id: format!("{i:06}"), record, vector: v }
            })
            .collect();
        s.apply(None, &changes).unwrap();
        let idx = VectorIndex::load(&s, dim).unwrap();
        assert!(idx.q8.is_some());
        let cols = vec!["parity".to_string()];
        for qi in 0..20 {
            let q = idx.vector(qi * 37).to_vec();
            let f = Filter::parse(&["parity=odd"], &cols).unwrap();
            let got: Vec<usize> = idx
                .search(&q, 10, &f, None)
                .unwrap()
                .iter()
                .map(|h| idx.row_of(&h.id).unwrap())
                .collect();
            let want: Vec<usize> = kernel::top_k_scalar(idx.matrix(), dim, &q, 10, |r| r % 2 == 1)
                .iter()
                .map(|s| s.row)
                .collect();
            assert_eq!(got, want, "query {qi}");
        }
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
        let hits = idx.search(&[1.0, 0.0], 1, &Filter::default(), Some(0)).unwrap();
        assert_eq!(hits[0].id, "b");
        assert!(idx.search(&[1.0, 0.0, 0.0], 1, &Filter::default(), None).is_err());
    }
}
