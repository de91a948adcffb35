//! The metadata table that describes a catalogue's photos (`styles.csv` or any CSV with
//! an `id` column): messy real files (encodings, delimiters, ragged rows, repeated ids)
//! are read, and what was odd about them is counted.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use unicode_normalization::UnicodeNormalization;

use super::CatalogError;

/// The metadata table, keyed by id.
#[derive(Debug, Default, Clone)]
pub struct Metadata {
    /// Columns other than `id`, in file order.
    pub columns: Vec<String>,
    pub rows: HashMap<String, BTreeMap<String, String>>,
    /// Rows whose field count differs from the header (kept, fields matched by position).
    pub ragged_rows: usize,
    /// Rows with an empty id (dropped).
    pub rows_without_id: usize,
    /// Rows repeating an earlier id (dropped; the first wins).
    pub duplicate_ids: usize,
    /// Lines the CSV parser could not read at all (dropped).
    pub unreadable_rows: usize,
    /// How the file was read when it was not plain UTF-8 (`UTF-16LE`, `windows-1252`, ...).
    pub encoding: Option<String>,
    /// The field delimiter found in the header line (`,` `;` tab or `|`).
    pub delimiter: char,
    /// Header names given more than once: the first column of each name is used.
    pub repeated_columns: Vec<String>,
}

impl Metadata {
    /// Read a CSV with a header row containing `id` (case-insensitive).
    pub fn read_csv(path: &Path) -> Result<Self, CatalogError> {
        let bytes = std::fs::read(path)
            .map_err(|e| CatalogError::Io { path: path.to_path_buf(), message: e.to_string() })?;
        Self::parse(&bytes, path)
    }

    /// Parse CSV bytes; `path` only names the source in errors. UTF-8 (with or without a
    /// byte-order mark), UTF-16 with its mark, and anything else as Windows-1252 (the
    /// usual "Excel CSV"); the delimiter is whichever of `,` `;` tab `|` the header line
    /// uses most.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, CatalogError> {
        let (text, encoding) = decode_text(bytes);
        let delimiter = sniff_delimiter(&text);
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .delimiter(delimiter as u8)
            .from_reader(&text[..]);
        let headers: Vec<String> = rdr
            .headers()
            .map_err(|e| CatalogError::Csv { path: path.to_path_buf(), message: e.to_string() })?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let id_col =
            headers.iter().position(|h| h.eq_ignore_ascii_case("id")).ok_or_else(|| {
                CatalogError::MissingColumn {
                    path: path.to_path_buf(),
                    column: "id".into(),
                    found: headers.join(", "),
                }
            })?;
        // The columns used: not the id, not unnamed, the first of a repeated name.
        let mut repeated_columns = Vec::new();
        let mut named = std::collections::HashSet::new();
        let used: Vec<bool> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let first = named.insert(h.clone());
                if !first && !h.is_empty() && !repeated_columns.contains(h) {
                    repeated_columns.push(h.clone());
                }
                i != id_col && !h.is_empty() && first
            })
            .collect();
        let mut md = Metadata {
            columns: headers
                .iter()
                .zip(&used)
                .filter(|(_, u)| **u)
                .map(|(h, _)| h.clone())
                .collect(),
            encoding: encoding.map(str::to_string),
            delimiter,
            repeated_columns,
            ..Default::default()
        };
        for rec in rdr.records() {
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    // Invalid UTF-8 or a broken quote costs that row only.
                    tracing::debug!("unreadable CSV row in {}: {e}", path.display());
                    md.unreadable_rows += 1;
                    continue;
                }
            };
            if rec.len() != headers.len() {
                md.ragged_rows += 1;
            }
            // NFC, as photo ids are: the table and the file names may be in either form.
            let id: String = rec.get(id_col).map(str::trim).unwrap_or("").nfc().collect();
            if id.is_empty() {
                md.rows_without_id += 1;
                continue;
            }
            if md.rows.contains_key(&id) {
                md.duplicate_ids += 1;
                continue;
            }
            let fields: BTreeMap<String, String> = headers
                .iter()
                .enumerate()
                .filter(|(i, _)| used[*i])
                .filter_map(|(i, h)| {
                    let v = rec.get(i)?.trim();
                    (!v.is_empty()).then(|| (h.clone(), v.to_string()))
                })
                .collect();
            md.rows.insert(id, fields);
        }
        Ok(md)
    }
}

/// The bytes of a CSV file as UTF-8 and, when it was not UTF-8, the encoding it was read
/// as. A UTF-8 file with a few bad bytes stays as it is: its bad rows are refused one by
/// one.
fn decode_text(bytes: &[u8]) -> (std::borrow::Cow<'_, [u8]>, Option<&'static str>) {
    use std::borrow::Cow;
    if let Some((encoding, _)) = encoding_rs::Encoding::for_bom(bytes) {
        // UTF-8, UTF-16LE or UTF-16BE, as its byte-order mark says (the mark dropped).
        let (text, _) = encoding.decode_with_bom_removal(bytes);
        let name = (encoding != encoding_rs::UTF_8).then_some(encoding.name());
        return (Cow::Owned(text.into_owned().into_bytes()), name);
    }
    if std::str::from_utf8(bytes).is_ok() {
        return (Cow::Borrowed(bytes), None);
    }
    // Valid UTF-8 characters beyond ASCII elsewhere: UTF-8 with a few bad bytes. None:
    // not UTF-8 at all; spreadsheet exports are then most often Windows-1252 (a superset
    // of Latin-1, mapping every byte to a character).
    let lossy = String::from_utf8_lossy(bytes);
    if lossy.chars().any(|c| !c.is_ascii() && c != char::REPLACEMENT_CHARACTER) {
        return (Cow::Borrowed(bytes), None);
    }
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
    (Cow::Owned(text.into_owned().into_bytes()), Some(encoding_rs::WINDOWS_1252.name()))
}

/// The delimiter the header line uses most, outside quotes; `,` when none appears.
fn sniff_delimiter(bytes: &[u8]) -> char {
    let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    let header = String::from_utf8_lossy(&bytes[..end]);
    let mut counts = [(',', 0usize), (';', 0), ('\t', 0), ('|', 0)];
    let mut quoted = false;
    for c in header.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted && let Some(slot) = counts.iter_mut().find(|(d, _)| *d == c) {
            slot.1 += 1;
        }
    }
    // The first of the most used wins, so a tie keeps the comma.
    counts.iter().fold((',', 0), |best, &(d, n)| if n > best.1 { (d, n) } else { best }).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Metadata, CatalogError> {
        Metadata::parse(s.as_bytes(), Path::new("t.csv"))
    }

    #[test]
    fn ids_are_nfc_as_photo_ids_are() {
        let md = parse("id,articleType\ncafe\u{301},Shirts\n").unwrap();
        assert_eq!(md.rows["caf\u{e9}"]["articleType"], "Shirts");
    }

    #[test]
    fn semicolons_tabs_and_pipes_are_found_as_delimiters() {
        for d in [";", "\t", "|"] {
            let text = format!("id{d}articleType{d}baseColour\n7{d}Tshirts{d}Navy Blue\n");
            let md = Metadata::parse(text.as_bytes(), Path::new("s.csv")).unwrap();
            assert_eq!(md.delimiter.to_string(), d);
            assert_eq!(md.columns, ["articleType", "baseColour"]);
            assert_eq!(md.rows["7"]["baseColour"], "Navy Blue");
        }
        // Commas inside quotes do not count; a tie keeps the comma.
        let md = Metadata::parse(b"id;\"name, long\";x\n1;a;b\n", Path::new("s.csv")).unwrap();
        assert_eq!(md.delimiter, ';');
        let md = Metadata::parse(b"id,a;b\n1,x;y\n", Path::new("s.csv")).unwrap();
        assert_eq!((md.delimiter, md.rows["1"]["a;b"].as_str()), (',', "x;y"));
    }

    #[test]
    fn utf16_and_latin1_files_keep_their_metadata() {
        let text = "id,productDisplayName\n1,Crème brûlée scarf\n";
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let md = Metadata::parse(&utf16, Path::new("u.csv")).unwrap();
        assert_eq!(md.encoding.as_deref(), Some("UTF-16LE"));
        assert_eq!(md.rows["1"]["productDisplayName"], "Crème brûlée scarf");
        // Latin-1 bytes (é = E9): read as Windows-1252, not every row "unreadable".
        let latin1: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
        let md = Metadata::parse(&latin1, Path::new("l.csv")).unwrap();
        assert_eq!(md.encoding.as_deref(), Some("windows-1252"));
        assert_eq!(
            (md.unreadable_rows, md.rows["1"]["productDisplayName"].as_str()),
            (0, "Crème brûlée scarf")
        );
        // Plain UTF-8, with or without its mark.
        let md = Metadata::parse(format!("\u{feff}{text}").as_bytes(), Path::new("b.csv")).unwrap();
        assert_eq!((md.encoding, md.rows.len()), (None, 1));
    }

    #[test]
    fn a_repeated_header_is_used_once_and_reported() {
        let md =
            Metadata::parse(b"id,colour,size,colour\n1,red,M,blue\n", Path::new("r.csv")).unwrap();
        assert_eq!(md.columns, ["colour", "size"]);
        assert_eq!(md.repeated_columns, ["colour"]);
        assert_eq!(md.rows["1"]["colour"], "red");
    }

    #[test]
    fn quoted_commas_empty_fields_and_ragged_rows() {
        let md = parse(
            "\u{feff}id,gender,productDisplayName,year\n\
             1,Men,\"Shirt, blue\",2012\n\
             2,,Plain,\n\
             3,Women\n\
             4,Men,a,2011,extra\n\
             ,Men,no id,2000\n\
             1,Women,dup,1999\n",
        )
        .unwrap();
        assert_eq!(md.columns, vec!["gender", "productDisplayName", "year"]);
        assert_eq!(md.rows["1"]["productDisplayName"], "Shirt, blue");
        assert_eq!(md.rows["1"]["gender"], "Men", "first of a duplicated id wins");
        assert!(!md.rows["2"].contains_key("gender"), "empty fields are absent");
        assert_eq!(md.rows["3"].len(), 1);
        assert_eq!(md.rows.len(), 4);
        assert_eq!((md.ragged_rows, md.rows_without_id, md.duplicate_ids), (2, 1, 1));
    }

    #[test]
    fn missing_id_column_is_named() {
        let err = parse("sku,gender\n1,Men\n").unwrap_err().to_string();
        assert!(err.contains("'id'") && err.contains("sku, gender"), "{err}");
    }

    #[test]
    fn id_column_anywhere_and_any_case() {
        let md = parse("name,ID\nx,7\n").unwrap();
        assert_eq!(md.columns, vec!["name"]);
        assert_eq!(md.rows["7"]["name"], "x");
    }

    #[test]
    fn invalid_utf8_costs_one_row() {
        // UTF-8 elsewhere (é), so the bad bytes are a damaged row, not another encoding.
        let mut bytes = "id,name\n1,café\n2,".as_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"\n3,fine\n");
        let md = Metadata::parse(&bytes, Path::new("t.csv")).unwrap();
        assert_eq!(md.rows.len(), 2);
        assert_eq!(md.unreadable_rows, 1);
    }
}
