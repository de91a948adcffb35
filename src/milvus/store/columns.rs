//! The catalogue's metadata columns as fields of the items collection: the schema comes
//! from the CSV's header when `index` creates the collection, so that other tools (a
//! shop's own pymilvus queries, Attu) read and filter `articleType` as a field of its
//! own, with the CSV's text.
//!
//! These fields are written beside the item's record and never read back by lookalike:
//! the record (every column, whatever the schema) stays what an item is, and filters run
//! on the lower-cased `facets` document (search.rs), which compares as the in-memory
//! facets do. A column that cannot be a Milvus field (its name, or past the field limit),
//! or that appears only after the collection was created (Milvus 2.3 adds no fields), is
//! kept in the record and `facets` alone.

use std::collections::BTreeMap;

use super::{MilvusStore, backend, search};
use crate::store::StoreError;

/// Longest value of a column field (bytes): longer ones are cut at a character boundary
/// there, and kept whole in the record.
pub(super) const MAX_VALUE: usize = 2_048;

/// Metadata fields per collection: Milvus takes 64 fields in all by default, and the
/// items have five of their own.
const MAX_COLUMNS: usize = 48;

/// The items' own fields, which no column may take.
const RESERVED: [&str; 5] = ["id", "key", "record", "vector", search::FACETS];

/// The items collection's fields and what they allow, read once (a collection's fields
/// never change).
#[derive(Debug, Clone, Default)]
pub(super) struct Schema {
    /// The items have the `facets` document (collections made before it are searched in
    /// memory).
    pub facets: bool,
    /// The metadata columns with a field of their own, in the schema's order.
    pub columns: Vec<String>,
}

/// Whether `name` can be a Milvus field: a letter or `_`, then letters, digits and `_`
/// (Milvus's rule), at most 255 of them.
fn valid(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 255
}

/// The columns (a CSV header, in order) that get a field of their own.
pub(super) fn column_fields(columns: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in columns {
        // One field per name whatever case the server tells apart.
        let taken = |n: &str| n.eq_ignore_ascii_case(c);
        if valid(c) && !RESERVED.iter().any(|r| taken(r)) && !out.iter().any(|o| taken(o)) {
            out.push(c.clone());
        }
    }
    out.truncate(MAX_COLUMNS);
    out
}

/// `value` as a column field holds it: at most [`MAX_VALUE`] bytes.
pub(super) fn field_value(value: &str) -> String {
    if value.len() <= MAX_VALUE {
        return value.to_string();
    }
    let mut end = MAX_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

/// One column's values for rows of `metadata` (empty where a row lacks it).
pub(super) fn column_values(column: &str, metadata: &[&BTreeMap<String, String>]) -> Vec<String> {
    metadata.iter().map(|m| m.get(column).map_or_else(String::new, |v| field_value(v))).collect()
}

impl MilvusStore {
    /// The items collection's [`Schema`] (asked once, with DescribeCollection); an
    /// absent collection has none yet, and is asked again once it exists.
    pub(super) fn schema(&self) -> Result<Schema, StoreError> {
        if let Some(s) = self.schema.lock().map_err(|_| super::poisoned())?.as_ref() {
            return Ok(s.clone());
        }
        if !self.exists().map_err(backend)? {
            return Ok(Schema::default());
        }
        let (client, items) = (self.client.clone(), self.items().to_string());
        let fields = self.run(async move { client.field_names(&items).await }).map_err(backend)?;
        let schema = Schema {
            facets: fields.iter().any(|f| f == search::FACETS),
            columns: fields.into_iter().filter(|f| !RESERVED.contains(&f.as_str())).collect(),
        };
        *self.schema.lock().map_err(|_| super::poisoned())? = Some(schema.clone());
        Ok(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_header_keeps_its_order_and_loses_what_cannot_be_a_field() {
        let header = names(&[
            "articleType",
            "base colour",
            "id",
            "Record",
            "_x9",
            "9lives",
            "gender",
            "Gender",
            "année",
            "",
        ]);
        assert_eq!(column_fields(&header), names(&["articleType", "_x9", "gender"]));
        let many: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
        assert_eq!(column_fields(&many).len(), MAX_COLUMNS);
        assert_eq!(column_fields(&names(&[&"a".repeat(256)])), Vec::<String>::new());
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_VALUE);
        let cut = field_value(&long);
        assert!(cut.len() <= MAX_VALUE && cut.len() > MAX_VALUE - 2, "{}", cut.len());
        assert!(long.starts_with(&cut));
        assert_eq!(field_value("Shirts"), "Shirts");
        let a: BTreeMap<String, String> = [("gender".to_string(), "Men".to_string())].into();
        let b = BTreeMap::new();
        assert_eq!(column_values("gender", &[&a, &b]), names(&["Men", ""]));
    }
}
