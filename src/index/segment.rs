//! A segment: an immutable block of items in one dense matrix, ordered by key, with the
//! facet bitmaps of their metadata.
//!
//! Segments never change once built, so a search can read one while a writer builds the
//! next; live updates add small segments and merge them (see [`super::VectorIndex`]).

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;

use crate::kernel;
use crate::store::ItemRecord;

/// From this many items on, a segment keeps an i8 copy of its vectors that search scans
/// first (a quarter of the memory traffic; the scan is memory-bound), re-ranking the
/// candidates exactly in f32; below it the plain f32 scan is as fast. Measured at 44k:
/// same top-10 as the f32 scan on every benchmark query, p50 3.5 ms against 8-10 ms
/// (BENCHMARKS.md).
pub const COMPACT_SCAN_MIN_ROWS: usize = 8192;

/// One item on its way into a segment.
#[derive(Debug, Clone)]
pub struct Item {
    pub key: u32,
    pub id: String,
    pub record: ItemRecord,
    pub vector: Vec<f32>,
}

/// Items in key order: vectors row-major, records and ids beside them.
#[derive(Debug, Default, Clone)]
pub struct Segment {
    dim: usize,
    keys: Vec<u32>,
    ids: Vec<String>,
    records: Vec<ItemRecord>,
    data: Vec<f32>,
    q8: Option<kernel::Int8Rows>,
    by_id: HashMap<String, usize>,
    key_set: RoaringBitmap,
    /// column → lower-cased value → keys of the items holding it.
    facets: HashMap<String, HashMap<String, RoaringBitmap>>,
}

impl Segment {
    /// A segment of `items`, which must all have `dim` values (the caller checks).
    pub fn new(dim: usize, mut items: Vec<Item>) -> Self {
        items.sort_by_key(|i| i.key);
        let mut s = Segment::empty(dim);
        s.data.reserve(items.len() * dim);
        for item in items {
            s.push(item.key, item.id, item.record, &item.vector);
        }
        s.finish();
        s
    }

    /// An empty segment to [`Segment::push`] rows into (any key order), then
    /// [`Segment::finish`]: builds a large segment without a second copy of its vectors.
    pub fn empty(dim: usize) -> Self {
        Segment { dim, ..Default::default() }
    }

    /// The live rows (`alive` keys) of `parts`, which hold ascending, disjoint key ranges,
    /// in one segment.
    pub fn merge(parts: &[&Segment], alive: &RoaringBitmap) -> Self {
        let dim = parts.first().map_or(0, |p| p.dim);
        let mut s = Segment { dim, ..Default::default() };
        for p in parts {
            for (row, &key) in p.keys.iter().enumerate() {
                if alive.contains(key) {
                    s.push(key, p.ids[row].clone(), p.records[row].clone(), p.vector(row));
                }
            }
        }
        s.finish();
        s
    }

    pub fn push(&mut self, key: u32, id: String, record: ItemRecord, v: &[f32]) {
        let row = self.keys.len();
        for (col, val) in &record.metadata {
            self.facets
                .entry(col.clone())
                .or_default()
                .entry(val.to_lowercase())
                .or_default()
                .insert(key);
        }
        self.by_id.insert(id.clone(), row);
        self.keys.push(key);
        self.key_set.insert(key);
        self.ids.push(id);
        self.records.push(record);
        self.data.extend_from_slice(v);
    }

    /// Put rows in key order (a no-op when they came so, the usual case: the store hands
    /// out keys in id order) and build the i8 copy of a large segment.
    pub fn finish(&mut self) {
        if !self.keys.is_sorted() {
            let mut order: Vec<usize> = (0..self.len()).collect();
            order.sort_by_key(|&r| self.keys[r]);
            let old = std::mem::replace(self, Segment::empty(self.dim));
            let mut records: Vec<Option<ItemRecord>> = old.records.into_iter().map(Some).collect();
            let mut ids: Vec<Option<String>> = old.ids.into_iter().map(Some).collect();
            self.data.reserve(old.data.len());
            for r in order {
                let (id, record) = (ids[r].take(), records[r].take());
                if let (Some(id), Some(record)) = (id, record) {
                    let v = &old.data[r * old.dim..(r + 1) * old.dim];
                    self.push(old.keys[r], id, record, v);
                }
            }
        }
        if self.len() >= COMPACT_SCAN_MIN_ROWS {
            self.q8 = Some(kernel::Int8Rows::quantise(&self.data, self.dim));
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The row holding `id`, dead or alive.
    pub fn row_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// The row holding `key`.
    pub fn row_of_key(&self, key: u32) -> Option<usize> {
        // Keys are mostly consecutive (a loaded index, a batch): try the direct place first,
        // which keeps a cell scan of many scattered rows from paying a search per row.
        let first = *self.keys.first()?;
        if let Some(r) = key.checked_sub(first).map(|d| d as usize)
            && self.keys.get(r) == Some(&key)
        {
            return Some(r);
        }
        self.keys.binary_search(&key).ok()
    }

    pub fn key(&self, row: usize) -> u32 {
        self.keys[row]
    }

    pub fn keys(&self) -> &[u32] {
        &self.keys
    }

    pub fn key_set(&self) -> &RoaringBitmap {
        &self.key_set
    }

    pub fn first_key(&self) -> Option<u32> {
        self.keys.first().copied()
    }

    pub fn last_key(&self) -> Option<u32> {
        self.keys.last().copied()
    }

    pub fn id(&self, row: usize) -> &str {
        &self.ids[row]
    }

    pub fn record(&self, row: usize) -> &ItemRecord {
        &self.records[row]
    }

    pub fn metadata(&self, row: usize) -> &BTreeMap<String, String> {
        &self.records[row].metadata
    }

    /// Image path of a row, relative to the catalogue folder (or, for added items, to the
    /// index folder).
    pub fn path(&self, row: usize) -> &str {
        &self.records[row].path
    }

    /// Content hash of a row's photo (stable while the photo is unchanged).
    pub fn hash(&self, row: usize) -> &str {
        &self.records[row].hash
    }

    pub fn vector(&self, row: usize) -> &[f32] {
        &self.data[row * self.dim..(row + 1) * self.dim]
    }

    /// The whole matrix, row-major.
    pub fn matrix(&self) -> &[f32] {
        &self.data
    }

    pub(super) fn q8(&self) -> Option<&kernel::Int8Rows> {
        self.q8.as_ref()
    }

    /// Every value (lower-cased) of `column` with the keys of the items holding it.
    pub(super) fn facet_values(
        &self,
        column: &str,
    ) -> Option<impl Iterator<Item = (&String, &RoaringBitmap)>> {
        self.facets.get(column).map(|m| m.iter())
    }

    /// Keys of the items whose `column` holds one of `values` (lower-cased).
    pub(super) fn facet(&self, column: &str, values: &[String]) -> RoaringBitmap {
        let Some(by_value) = self.facets.get(column) else { return RoaringBitmap::new() };
        values.iter().filter_map(|v| by_value.get(v)).fold(RoaringBitmap::new(), |acc, b| acc | b)
    }
}
