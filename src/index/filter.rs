//! Metadata filters: `column=value` conditions, resolved to a bitmap of item keys through
//! each segment's facet bitmaps before any vector is compared.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use super::segment::Segment;
use crate::error::{Error, Result};

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

    /// The conditions: per column, its alternative values (lower-cased).
    pub fn clauses(&self) -> &[(String, Vec<String>)] {
        &self.clauses
    }

    /// Whether a condition names `column`.
    pub fn has_column(&self, column: &str) -> bool {
        self.clauses.iter().any(|(c, _)| c == column)
    }

    pub fn matches(&self, metadata: &BTreeMap<String, String>) -> bool {
        self.clauses.iter().all(|(col, vals)| {
            metadata.get(col).is_some_and(|v| {
                let v = v.to_lowercase();
                vals.contains(&v)
            })
        })
    }

    /// Keys of `segment`'s items that pass (dead ones included: the caller intersects).
    pub(super) fn keys_in(&self, segment: &Segment) -> RoaringBitmap {
        let mut clauses = self.clauses.iter();
        let Some((col, vals)) = clauses.next() else { return segment.key_set().clone() };
        let mut keys = segment.facet(col, vals);
        for (col, vals) in clauses {
            if keys.is_empty() {
                break;
            }
            keys &= segment.facet(col, vals);
        }
        keys
    }
}
