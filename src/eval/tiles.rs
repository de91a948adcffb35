//! The HTML report's rows: sample queries beside their top-k, right or wrong.

use super::catalogue::LooReport;
use super::photos::{PhotoQuery, PhotoReport};
use crate::index::Segment;
use crate::kernel::Scored;
use crate::label::label_value;

fn item_tile(
    index: &Segment,
    root: Option<&str>,
    s: &Scored,
    label: &str,
    correct: Option<bool>,
) -> crate::report::Tile {
    let md = index.metadata(s.row);
    let image = match root {
        Some(r) => format!("{}/{}", r.trim_end_matches('/'), index.path(s.row)),
        None => index.path(s.row).to_string(),
    };
    crate::report::Tile {
        image,
        caption: format!(
            "{} {:.3} {}",
            index.id(s.row),
            s.score,
            md.get(label).map(String::as_str).unwrap_or("")
        ),
        correct,
    }
}

/// Rows of the HTML report for a leave-one-out run (first label decides right/wrong).
pub fn loo_rows(
    index: &Segment,
    root: Option<&str>,
    report: &LooReport,
    labels: &[Vec<String>],
) -> Vec<crate::report::Row> {
    let cols = &labels[0];
    let shown = cols.first().map(String::as_str).unwrap_or("");
    report
        .samples
        .iter()
        .map(|(q, top)| {
            let want = label_value(index.metadata(*q), cols);
            let query = item_tile(index, root, &Scored { row: *q, score: 1.0 }, shown, None);
            let results = top
                .iter()
                .map(|s| {
                    let ok = want.is_some() && label_value(index.metadata(s.row), cols) == want;
                    item_tile(index, root, s, shown, Some(ok))
                })
                .collect();
            crate::report::Row { query, results }
        })
        .collect()
}

/// Rows of the HTML report for outside-photo queries.
pub fn photo_rows(
    index: &Segment,
    root: Option<&str>,
    report: &PhotoReport,
    queries: &[PhotoQuery],
    column: &str,
) -> Vec<crate::report::Row> {
    report
        .samples
        .iter()
        .map(|(file, top)| {
            let q = queries.iter().find(|q| &q.file == file);
            let abs = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
            let query = crate::report::Tile {
                image: abs.display().to_string(),
                caption: q
                    .map(|q| format!("{} → {}", q.label, q.matches.join("|")))
                    .unwrap_or_default(),
                correct: None,
            };
            let results = top
                .iter()
                .map(|s| {
                    let ok = q.is_some_and(|q| {
                        index
                            .metadata(s.row)
                            .get(column)
                            .is_some_and(|v| q.matches.contains(&v.to_lowercase()))
                    });
                    item_tile(index, root, s, column, Some(ok))
                })
                .collect();
            crate::report::Row { query, results }
        })
        .collect()
}
