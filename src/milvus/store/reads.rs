//! A collection's [`ItemReads`]: what a query server asks Milvus instead of holding a
//! snapshot. Every read sees the writes this store made, and every write any process
//! made more than [`STALENESS_MS`] before it (Milvus's Session consistency with that
//! moment as the guarantee timestamp), so that a write through one server is in another's
//! results within a second without each read waiting for the server's next time tick, as
//! a Strong one would (~200 ms).

use std::collections::BTreeMap;

use super::items::rows;
use super::search::{MAX_TOPK, expression};
use super::{MilvusStore, backend};
use crate::milvus::client::{Window, hybrid_now};
use crate::store::{Found, ItemReads, ItemRecord, StoreError};

/// How old a write of another process may be and still be missed by a read (ms).
pub(super) const STALENESS_MS: u64 = 500;

/// Deepest match a page may reach: Milvus answers at most 16,384 rows past an offset's
/// start.
const DEEPEST: usize = 16_384;

impl MilvusStore {
    /// The guarantee timestamp of a read: this store's own writes, and everything older
    /// than [`STALENESS_MS`].
    pub(super) fn read_guarantee(&self) -> u64 {
        let seen = self.seen.load(std::sync::atomic::Ordering::Acquire);
        seen.max(hybrid_now().saturating_sub(STALENESS_MS << 18))
    }

    /// The expression of the items passing `conditions` (every item when none).
    fn matching(&self, conditions: &[(String, Vec<String>)]) -> Result<String, StoreError> {
        if !conditions.is_empty() && !self.schema()?.facets {
            return Err(self.no_facets());
        }
        Ok(match expression(conditions, None) {
            e if e.is_empty() => "key >= 0".to_string(),
            e => e,
        })
    }

    fn no_facets(&self) -> StoreError {
        StoreError::Backend(format!(
            "{} was written before lookalike kept filterable facets; re-index it to serve it \
             without a snapshot",
            self.address
        ))
    }
}

impl ItemReads for MilvusStore {
    fn nearest_items(
        &self,
        query: &[f32],
        k: usize,
        conditions: &[(String, Vec<String>)],
        exclude: Option<&str>,
    ) -> Result<Vec<Found>, StoreError> {
        if !self.schema()?.facets {
            return Err(self.no_facets());
        }
        let k = k.min(MAX_TOPK);
        if k == 0 || !self.exists().map_err(backend)? {
            return Ok(Vec::new());
        }
        let expr = expression(conditions, exclude);
        let params = super::search::params(k);
        let (client, items, query) =
            (self.client.clone(), self.items().to_string(), query.to_vec());
        let seen = self.read_guarantee();
        let (hits, cols) = self
            .run(async move {
                client
                    .search_fields(&items, &query, k, &expr, &params, seen, &["record", "vector"])
                    .await
            })
            .map_err(backend)?;
        // The fields come in the hits' order; `rows` keys them by id.
        let mut cols = cols;
        cols.push((
            "id".into(),
            crate::milvus::client::Column::Strings(hits.iter().map(|(id, _)| id.clone()).collect()),
        ));
        let mut by_id = rows(&cols)?;
        let mut out = Vec::with_capacity(hits.len());
        for (id, score) in hits {
            let Some((record, vector)) = by_id.remove(&id) else {
                return Err(StoreError::Corrupt {
                    id,
                    message: "the search named it without its record and vector".into(),
                });
            };
            out.push(Found { id, score, record: ItemRecord { key: None, ..record }, vector });
        }
        Ok(out)
    }

    fn items(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, (ItemRecord, Vec<f32>)>, StoreError> {
        let mut out = self.read_many(ids, Some(self.read_guarantee()))?;
        for (record, _) in out.values_mut() {
            record.key = None;
        }
        Ok(out)
    }

    fn count(&self, conditions: &[(String, Vec<String>)]) -> Result<usize, StoreError> {
        if !self.exists().map_err(backend)? {
            return Ok(0);
        }
        let expr = self.matching(conditions)?;
        let (client, items) = (self.client.clone(), self.items().to_string());
        let seen = Some(self.read_guarantee());
        let cols = self
            .run(async move {
                client.query_window(&items, &expr, &["count(*)"], Window::default(), seen).await
            })
            .map_err(backend)?;
        cols.iter()
            .find_map(|(_, c)| match c {
                crate::milvus::client::Column::Ints(v) => {
                    v.first().and_then(|&n| usize::try_from(n).ok())
                }
                _ => None,
            })
            .ok_or_else(|| StoreError::Backend("the server gave no count(*)".into()))
    }

    fn page(
        &self,
        conditions: &[(String, Vec<String>)],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, ItemRecord)>, StoreError> {
        if limit == 0 || !self.exists().map_err(backend)? {
            return Ok(Vec::new());
        }
        if offset.saturating_add(limit) > DEEPEST {
            return Err(StoreError::Backend(format!(
                "a Milvus collection lists its first {DEEPEST} matches only; narrow the list \
                 with a filter"
            )));
        }
        let expr = self.matching(conditions)?;
        let (client, items) = (self.client.clone(), self.items().to_string());
        let seen = Some(self.read_guarantee());
        // Milvus gives a window of the matches in primary-key (id) order.
        let cols = self
            .run(async move {
                client
                    .query_window(
                        &items,
                        &expr,
                        &["id", "record"],
                        Window { limit: Some(limit), offset },
                        seen,
                    )
                    .await
            })
            .map_err(backend)?;
        Ok(rows(&cols)?
            .into_iter()
            .map(|(id, (record, _))| (id, ItemRecord { key: None, ..record }))
            .collect())
    }

    fn scan_records(&self, f: &mut dyn FnMut(&str, &ItemRecord)) -> Result<(), StoreError> {
        self.walk_windows(false, &mut |found| {
            for (id, (record, _)) in &found {
                f(id, record);
            }
            Ok(())
        })
    }

    fn page_limit(&self) -> usize {
        DEEPEST
    }
}
