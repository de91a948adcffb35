//! The CSV files `eval` reads (outside photos for `--queries`, garments for `--looks`):
//! opened with their header, the columns a mode needs checked, match lists split.

use std::path::Path;

use crate::error::{Error, Result};

/// A CSV opened with its header read (`flag`: the option errors name).
pub(super) fn open(
    csv_path: &Path,
    flag: &'static str,
) -> Result<(csv::Reader<std::fs::File>, csv::StringRecord)> {
    let bad = |message: String| Error::BadParameter { name: flag, message };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(csv_path)
        .map_err(|e| bad(format!("{}: {e}", csv_path.display())))?;
    let headers = rdr.headers().map_err(|e| bad(e.to_string()))?.clone();
    Ok((rdr, headers))
}

/// The position of the column `name` (surrounding spaces ignored).
pub(super) fn column(headers: &csv::StringRecord, name: &str) -> Option<usize> {
    headers.iter().position(|h| h.trim() == name)
}

/// The positions of the columns `names`, or an error saying which are needed (and
/// `more`, what else a row may have) and which the file has.
pub(super) fn required<const N: usize>(
    headers: &csv::StringRecord,
    names: [&str; N],
    csv_path: &Path,
    flag: &'static str,
    more: &str,
) -> Result<[usize; N]> {
    let found = names.map(|n| column(headers, n));
    if found.iter().all(Option::is_some) {
        return Ok(found.map(|c| c.unwrap_or_default()));
    }
    let wanted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    Err(Error::BadParameter {
        name: flag,
        message: format!(
            "{} needs {} columns{more} (found: {})",
            csv_path.display(),
            wanted.join(" and "),
            headers.iter().collect::<Vec<_>>().join(", ")
        ),
    })
}

/// A `|`-separated list of values, trimmed and lower-cased, empty ones left out.
pub(super) fn match_list(text: &str) -> Vec<String> {
    text.split('|').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect()
}
