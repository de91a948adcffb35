//! A catalogue on disk: the product photos in a folder tree and the metadata table that
//! describes them (`styles.csv` or any CSV with an `id` column).
//!
//! Real catalogues are messy: quoted commas, empty fields, ragged rows, rows without a
//! photo, photos without a row, a byte-order mark. None of that aborts a run; it is
//! counted and reported. Only a table that cannot be used at all (no `id` column,
//! unreadable file) is an error.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// File extensions taken as photos.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// Largest photo file read (index, add, search): far above any real photo, small enough
/// that a stray huge file cannot fill the memory.
pub const MAX_PHOTO_BYTES: u64 = 256 * 1024 * 1024;

/// Read a photo file: only a regular file (a FIFO or a device would block or never end)
/// of at most [`MAX_PHOTO_BYTES`].
pub fn read_photo(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let too_big =
        || Error::new(ErrorKind::InvalidData, format!("larger than {} MB", MAX_PHOTO_BYTES >> 20));
    if meta.len() > MAX_PHOTO_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Bounded even if the file grows while it is read.
    std::fs::File::open(path)?.take(MAX_PHOTO_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PHOTO_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Errors that make a catalogue unusable.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalogue folder {0} does not exist or is not a folder")]
    NotAFolder(PathBuf),
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("metadata file {path} has no '{column}' column (columns found: {found})")]
    MissingColumn { path: PathBuf, column: String, found: String },
    #[error("metadata file {path} is not valid CSV: {message}")]
    Csv { path: PathBuf, message: String },
}

/// One photo found in the catalogue folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// File stem: the product id.
    pub id: String,
    pub path: PathBuf,
    /// Path relative to the catalogue root, with `/` separators.
    pub rel: String,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub photos: Vec<Photo>,
    /// Files with a non-image extension.
    pub ignored: usize,
    /// Photos whose id was already taken by an earlier path (kept: the first).
    pub duplicate_ids: Vec<String>,
    /// Entries left out, with the reason: links that lead outside the catalogue, that
    /// lead nowhere or into a loop, folders that cannot be read.
    pub unusable: Vec<(String, String)>,
}

/// Find photos below `root`, recursively, in path order; the id is the file stem.
///
/// Symbolic links are followed only while they stay inside the catalogue: a link to a
/// file or folder elsewhere, a dangling link and a link loop are each left out with the
/// reason (in [`Scan::unusable`]) and never stop the scan.
pub fn scan(root: &Path) -> Result<Scan, CatalogError> {
    if !root.is_dir() {
        return Err(CatalogError::NotAFolder(root.to_path_buf()));
    }
    let real_root = std::fs::canonicalize(root)
        .map_err(|e| CatalogError::Io { path: root.to_path_buf(), message: e.to_string() })?;
    let rel_of = |path: &Path| {
        path.strip_prefix(root)
            .unwrap_or(path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut out = Scan::default();
    let mut seen: HashMap<String, ()> = HashMap::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        // A link leading outside is not entered (the files below it would be read from
        // elsewhere); it is reported once, here.
        .filter_entry(|e| !e.path_is_symlink() || inside(&real_root, e.path()));
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // A loop, a dangling link or an unreadable folder: that entry alone.
                let path = e.path().map(rel_of).unwrap_or_default();
                let reason = if e.loop_ancestor().is_some() {
                    "link loop (leads back to a folder above it)".to_string()
                } else if e.path().is_some_and(|p| p.is_symlink() && !p.exists()) {
                    "dangling link (its target does not exist)".to_string()
                } else {
                    e.io_error().map_or_else(|| e.to_string(), ToString::to_string)
                };
                out.unusable.push((path, reason));
                continue;
            }
        };
        if entry.path_is_symlink() && !inside(&real_root, entry.path()) {
            continue; // reported below, where filter_entry cannot see it
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        let name = entry.file_name().to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if !is_image {
            // A metadata table beside the photos is expected, not an oddity to report.
            if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
                out.ignored += 1;
            }
            continue;
        }
        let Some(id) = path.file_stem().map(|s| s.to_string_lossy().to_string()) else { continue };
        if seen.insert(id.clone(), ()).is_some() {
            out.duplicate_ids.push(id);
            continue;
        }
        out.photos.push(Photo { id, path: path.to_path_buf(), rel: rel_of(path) });
    }
    out.unusable.extend(links_outside(root, &real_root).into_iter().map(|p| {
        (rel_of(&p), "link leads outside the catalogue folder (not followed)".to_string())
    }));
    out.unusable.sort();
    Ok(out)
}

/// Whether `path` (through any links) resolves to somewhere inside `real_root`. A path
/// that does not resolve (dangling) counts as inside, so that the walker reports it.
fn inside(real_root: &Path, path: &Path) -> bool {
    std::fs::canonicalize(path).map_or(true, |p| p.starts_with(real_root))
}

/// Links below `root` (not below links) that resolve outside `real_root`.
fn links_outside(root: &Path, real_root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path_is_symlink() && !inside(real_root, e.path()))
        .map(walkdir::DirEntry::into_path)
        .collect()
}

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
}

impl Metadata {
    /// Read a CSV with a header row containing `id` (case-insensitive).
    pub fn read_csv(path: &Path) -> Result<Self, CatalogError> {
        let bytes = std::fs::read(path)
            .map_err(|e| CatalogError::Io { path: path.to_path_buf(), message: e.to_string() })?;
        Self::parse(&bytes, path)
    }

    /// Parse CSV bytes; `path` only names the source in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, CatalogError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut rdr = csv::ReaderBuilder::new().flexible(true).has_headers(true).from_reader(bytes);
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
        let mut md = Metadata {
            columns: headers
                .iter()
                .enumerate()
                .filter(|(i, h)| *i != id_col && !h.is_empty())
                .map(|(_, h)| h.clone())
                .collect(),
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
            let id = rec.get(id_col).map(str::trim).unwrap_or("");
            if id.is_empty() {
                md.rows_without_id += 1;
                continue;
            }
            if md.rows.contains_key(id) {
                md.duplicate_ids += 1;
                continue;
            }
            let fields: BTreeMap<String, String> = headers
                .iter()
                .enumerate()
                .filter(|(i, h)| *i != id_col && !h.is_empty())
                .filter_map(|(i, h)| {
                    let v = rec.get(i)?.trim();
                    (!v.is_empty()).then(|| (h.clone(), v.to_string()))
                })
                .collect();
            md.rows.insert(id.to_string(), fields);
        }
        Ok(md)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Metadata, CatalogError> {
        Metadata::parse(s.as_bytes(), Path::new("t.csv"))
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
        let mut bytes = b"id,name\n1,ok\n2,".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"\n3,fine\n");
        let md = Metadata::parse(&bytes, Path::new("t.csv")).unwrap();
        assert_eq!(md.rows.len(), 2);
        assert_eq!(md.unreadable_rows, 1);
    }

    #[test]
    fn scan_finds_images_recursively_and_skips_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for f in ["a.jpg", "sub/b.PNG", "notes.txt", ".hidden.jpg", "sub/a.webp"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let s = scan(dir.path()).unwrap();
        let ids: Vec<_> = s.photos.iter().map(|p| (p.id.as_str(), p.rel.as_str())).collect();
        assert_eq!(ids, vec![("a", "a.jpg"), ("b", "sub/b.PNG")]);
        assert_eq!(s.ignored, 1);
        assert_eq!(s.duplicate_ids, vec!["a"]);
        assert!(scan(&dir.path().join("nope")).is_err());
    }
}
