//! Relevance labels: what makes two catalogue items "the same kind" for evaluation and
//! training: one metadata column, or several joined with `+` (`articleType+baseColour`).
//! Both `eval` and `projection` use them, so they live below both.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// A label: one column, or several joined with `+` (e.g. `articleType+baseColour`).
pub fn label_value(md: &BTreeMap<String, String>, cols: &[String]) -> Option<String> {
    let mut parts = Vec::with_capacity(cols.len());
    for c in cols {
        parts.push(md.get(c)?.to_lowercase());
    }
    Some(parts.join("\u{1f}"))
}

/// Check label specs (`a`, `a+b`) against known columns.
pub fn parse_labels(specs: &[String], columns: &[String]) -> Result<Vec<Vec<String>>> {
    specs
        .iter()
        .map(|s| {
            s.split('+')
                .map(|c| {
                    columns.iter().find(|k| k.eq_ignore_ascii_case(c.trim())).cloned().ok_or_else(
                        || Error::UnknownColumn {
                            column: c.trim().to_string(),
                            known: columns.join(", "),
                        },
                    )
                })
                .collect()
        })
        .collect()
}

/// The labels evaluated when none are asked for: those of articleType, subCategory and
/// articleType+baseColour whose columns the catalogue has.
pub fn default_specs(columns: &[String]) -> Vec<String> {
    ["articleType", "subCategory", "articleType+baseColour"]
        .iter()
        .filter(|l| l.split('+').all(|c| columns.iter().any(|k| k == c)))
        .map(|s| s.to_string())
        .collect()
}
