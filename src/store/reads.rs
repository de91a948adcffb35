//! Reads a store answers where it keeps the items, so that a query server holds no item
//! of its own: the store's nearest items with their records and vectors (re-ranking
//! needs both), one item by id, counts and pages under a filter, and a walk over the
//! records that keeps none of them. A Milvus collection offers them
//! ([`Store::reads`](super::Store::reads)), and the memory store as the reference; a
//! folder does not: its server loads a snapshot, which is faster than any round trip.
//!
//! Conditions are what [`Store::nearest`](super::Store::nearest) takes: per column, one
//! of its lower-cased values; columns combine.

use std::collections::BTreeMap;

use super::{ItemRecord, StoreError};

/// An item a store's search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub id: String,
    /// Inner product with the query, as the store computed it (re-scored by the reader).
    pub score: f32,
    pub record: ItemRecord,
    pub vector: Vec<f32>,
}

/// The reads of [`Store::reads`](super::Store::reads). Records come without keys: keys
/// name items in a snapshot's bitmaps, and a reader without a snapshot hands out none.
pub trait ItemReads: Send + Sync {
    /// The `k` items nearest `query` by inner product passing `conditions`, `exclude`
    /// left out, best first (the store's own search: it may be approximate).
    fn nearest_items(
        &self,
        query: &[f32],
        k: usize,
        conditions: &[(String, Vec<String>)],
        exclude: Option<&str>,
    ) -> Result<Vec<Found>, StoreError>;
    /// Items by id with their records and vectors (unknown ids left out).
    fn items(&self, ids: &[String])
    -> Result<BTreeMap<String, (ItemRecord, Vec<f32>)>, StoreError>;
    /// How many items pass `conditions` (all, when empty).
    fn count(&self, conditions: &[(String, Vec<String>)]) -> Result<usize, StoreError>;
    /// The items passing `conditions` in id order, `offset` skipped, at most `limit`.
    fn page(
        &self,
        conditions: &[(String, Vec<String>)],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, ItemRecord)>, StoreError>;
    /// Visit every item's record once, in no set order, holding one page at a time.
    fn scan_records(&self, f: &mut dyn FnMut(&str, &ItemRecord)) -> Result<(), StoreError>;
    /// How deep [`ItemReads::page`] reaches (offset plus limit).
    fn page_limit(&self) -> usize {
        usize::MAX
    }
}

/// Whether `metadata` passes `conditions` (values compared lower-cased).
pub fn passes(metadata: &BTreeMap<String, String>, conditions: &[(String, Vec<String>)]) -> bool {
    conditions.iter().all(|(column, values)| {
        metadata.get(column).is_some_and(|v| {
            let v = v.to_lowercase();
            values.contains(&v)
        })
    })
}
