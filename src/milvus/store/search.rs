//! Searching a collection inside Milvus: how its vectors are indexed, the filter as an
//! expression over the items' `facets` (every metadata column, lower-cased, as the
//! in-memory facets compare), and the search itself.
//!
//! Collections written before the `facets` field existed have none to filter on, and
//! an exact (FLAT) vector index: they are searched in memory, as before.

use std::collections::BTreeMap;

use super::{MilvusStore, backend};
use crate::milvus::quote;
use crate::store::StoreError;

/// HNSW's search breadth (at least k): recall@10 of the 1,000 street photos against
/// exact search on the 44k catalogue 0.9896 at 128, 0.9925 at 256, for +0.5 ms at p50
/// (BENCHMARKS.md, "Milvus index types").
const SEARCH_EF: usize = 256;

/// Cells an IVF index (`index --milvus-index ivf_flat|ivf_sq8`, 1,024 cells) probes: the
/// search parameters carry both this and HNSW's `ef`; each index reads its own.
const SEARCH_NPROBE: usize = 64;

/// Milvus's largest top-k.
pub(super) const MAX_TOPK: usize = 16_384;

/// The field holding an item's metadata for filters.
pub(super) const FACETS: &str = "facets";

/// An item's facets document: each column's value lower-cased (filters compare
/// case-insensitively, as the in-memory facets do).
pub(super) fn facets(metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let lowered: BTreeMap<&str, String> =
        metadata.iter().map(|(c, v)| (c.as_str(), v.to_lowercase())).collect();
    serde_json::to_vec(&lowered).unwrap_or_else(|_| b"{}".to_vec())
}

/// The expression keeping the items that pass `conditions` (per column, one of its
/// lower-cased values; columns combine) and are not `exclude`. Every column name and
/// value is a quoted literal: user text never becomes expression syntax.
pub(super) fn expression(conditions: &[(String, Vec<String>)], exclude: Option<&str>) -> String {
    let mut parts: Vec<String> = conditions
        .iter()
        .map(|(column, values)| {
            // Alternatives as equalities, not `in [...]`: milvus-lite takes `in` only on a
            // field, not on a key of a JSON one.
            let field = format!("{FACETS}[{}]", quote(column));
            let one: Vec<String> =
                values.iter().map(|v| format!("{field} == {}", quote(v))).collect();
            format!("({})", one.join(" || "))
        })
        .collect();
    if let Some(id) = exclude {
        parts.push(format!("id != {}", quote(id)));
    }
    parts.join(" && ")
}

/// The search parameters of a top-`k` search (each kind of vector index reads its own).
pub(super) fn params(k: usize) -> String {
    format!(r#"{{"ef": {}, "nprobe": {SEARCH_NPROBE}}}"#, k.max(SEARCH_EF))
}

impl MilvusStore {
    /// [`crate::store::Store::nearest`] in Milvus.
    pub(super) fn search_items(
        &self,
        query: &[f32],
        k: usize,
        conditions: &[(String, Vec<String>)],
        exclude: Option<&str>,
    ) -> Result<Option<Vec<(String, f32)>>, StoreError> {
        if !self.schema()?.facets {
            return Ok(None);
        }
        let k = k.min(MAX_TOPK);
        if k == 0 {
            return Ok(Some(Vec::new()));
        }
        let expr = expression(conditions, exclude);
        let params = params(k);
        let (client, items, query) =
            (self.client.clone(), self.items().to_string(), query.to_vec());
        let seen = self.read_guarantee();
        let hits = self
            .run(async move { client.search(&items, &query, k, &expr, &params, seen).await })
            .map_err(backend)?;
        Ok(Some(hits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_quote_every_name_and_value() {
        assert_eq!(expression(&[], None), "");
        let conditions = vec![
            ("articleType".to_string(), vec!["shirts".to_string(), "tops".to_string()]),
            ("we\"ird".to_string(), vec!["a\"] || id != \"x".to_string()]),
        ];
        assert_eq!(
            expression(&conditions, Some("i\"d")),
            r#"(facets["articleType"] == "shirts" || facets["articleType"] == "tops") && (facets["we\"ird"] == "a\"] || id != \"x") && id != "i\"d""#
        );
    }

    #[test]
    fn facets_are_lower_cased_metadata() {
        let m = BTreeMap::from([("baseColour".to_string(), "Navy Blue".to_string())]);
        assert_eq!(facets(&m), br#"{"baseColour":"navy blue"}"#.to_vec());
    }
}
