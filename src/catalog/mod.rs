//! A catalogue: the product photos in a folder tree, or below a prefix in object storage
//! (`source.rs`), and the metadata table that describes them (`metadata.rs`:
//! `styles.csv` or any CSV with an `id` column).
//!
//! Real catalogues are messy: quoted commas, empty fields, ragged rows, rows without a
//! photo, photos without a row, a byte-order mark. None of that aborts a run; it is
//! counted and reported. Only a table that cannot be used at all (no `id` column,
//! unreadable file) is an error; `ingest` then stops if the table was asked for, and
//! leaves out (and reports) a `styles.csv` it merely found. `shard.rs` splits a catalogue
//! between indexing processes.

mod metadata;
mod shard;
mod source;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use metadata::Metadata;
pub use shard::{MAX_SHARDS, Shard, shard_of};
pub use source::{Source, Table};

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
    #[error(transparent)]
    Bucket(#[from] crate::bucket::BucketError),
}

/// One photo found in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// File stem: the product id.
    pub id: String,
    /// The file (in a bucket: the object's key, not a file of this machine).
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

impl Scan {
    /// Take the file at `path` (`rel` from the catalogue's root) as a photo, or count it
    /// as ignored or a duplicate: the same rules for a folder and a bucket.
    fn consider(&mut self, seen: &mut HashSet<String>, path: &Path, rel: String) {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        if name.starts_with('.') {
            return;
        }
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if !is_image {
            // A metadata table beside the photos is expected, not an oddity to report.
            if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
                self.ignored += 1;
            }
            return;
        }
        let Some(id) = path.file_stem().map(id_of_stem) else { return };
        if !seen.insert(id.clone()) {
            self.duplicate_ids.push(id);
            return;
        }
        self.photos.push(Photo { id, path: path.to_path_buf(), rel });
    }
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
    let mut seen = HashSet::new();
    // Links leading outside: neither entered nor read (the files would come from
    // elsewhere), only reported.
    let mut outside = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let keep = !e.path_is_symlink() || inside(&real_root, e.path());
            if !keep {
                outside.push(e.path().to_path_buf());
            }
            keep
        });
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // A loop, a dangling link or an unreadable folder: that entry alone.
                let path = e.path().map(rel_of).unwrap_or_default();
                let reason = if e.loop_ancestor().is_some() {
                    "link loop (leads back to a folder above it)".to_string()
                } else if e.path().is_some_and(links_in_a_circle) {
                    "link loop (its links lead back to one another)".to_string()
                } else if e.path().is_some_and(|p| p.is_symlink() && !p.exists()) {
                    "dangling link (its target does not exist)".to_string()
                } else {
                    e.io_error().map_or_else(|| e.to_string(), ToString::to_string)
                };
                out.unusable.push((path, reason));
                continue;
            }
        };
        if !entry.file_type().is_file() {
            if !entry.file_type().is_dir() {
                // Reading a FIFO would block, a device might never end.
                let why = "not a regular file (a FIFO, socket or device)".to_string();
                out.unusable.push((rel_of(entry.path()), why));
            }
            continue;
        }
        out.consider(&mut seen, entry.path(), rel_of(entry.path()));
    }
    out.unusable.extend(outside.iter().map(|p| {
        (rel_of(p), "link leads outside the catalogue folder (not followed)".to_string())
    }));
    out.unusable.sort();
    Ok(out)
}

/// A photo's id from its file stem, in Unicode NFC (as ids written through `add` and the
/// API are: a `café.jpg` saved decomposed, as macOS names files, is the item `café`
/// typed anywhere). A stem that is not valid UTF-8 keeps its readable part and gains a
/// short hash of its bytes, so that two names differing only in their invalid bytes stay
/// two items.
fn id_of_stem(stem: &std::ffi::OsStr) -> String {
    use unicode_normalization::UnicodeNormalization;
    match stem.to_str() {
        Some(s) => s.nfc().collect(),
        None => {
            let raw = stem.as_encoded_bytes();
            let hash = blake3::hash(raw).to_hex();
            format!("{}~{}", stem.to_string_lossy(), &hash[..8])
        }
    }
}

/// Whether `path` is a link that never resolves because its links lead back to one
/// another (`a -> b -> a`): it does not "exist" either, but it is no dangling link.
#[cfg(unix)]
fn links_in_a_circle(path: &Path) -> bool {
    path.is_symlink()
        && std::fs::metadata(path).is_err_and(|e| e.raw_os_error() == Some(libc::ELOOP))
}

#[cfg(not(unix))]
fn links_in_a_circle(_: &Path) -> bool {
    false
}

/// Whether `path` (through any links) resolves to somewhere inside `real_root`. A path
/// that does not resolve (dangling) counts as inside, so that the walker reports it.
fn inside(real_root: &Path, path: &Path) -> bool {
    std::fs::canonicalize(path).map_or(true, |p| p.starts_with(real_root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn names_differing_only_in_invalid_bytes_are_two_items() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let jpeg = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/queries/hat.jpg"),
        )
        .unwrap();
        for name in [&b"hat\xff.jpg"[..], b"hat\xfe.jpg", b"hat.jpg"] {
            std::fs::write(dir.path().join(std::ffi::OsStr::from_bytes(name)), &jpeg).unwrap();
        }
        let scan = scan(dir.path()).unwrap();
        let ids: std::collections::HashSet<&str> =
            scan.photos.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(ids.contains("hat"));
        assert!(ids.iter().filter(|i| i.starts_with("hat\u{fffd}~")).count() == 2, "{ids:?}");
        assert!(scan.duplicate_ids.is_empty());
    }

    #[test]
    fn ids_are_nfc_whichever_form_the_file_name_has() {
        // Before: a decomposed name kept its decomposed id, which an NFC lookup missed.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cafe\u{301}.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("th\u{e9}.jpg"), b"x").unwrap();
        let s = scan(dir.path()).unwrap();
        let mut ids: Vec<&str> = s.photos.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["caf\u{e9}", "th\u{e9}"]);
        // The file is still read by its own name.
        assert!(s.photos.iter().any(|p| p.rel == "cafe\u{301}.jpg"));
        // Both forms of one name in one folder are one id, reported as a duplicate.
        std::fs::write(dir.path().join("caf\u{e9}.jpg"), b"x").unwrap();
        assert_eq!(scan(dir.path()).unwrap().duplicate_ids, ["caf\u{e9}"]);
    }

    #[cfg(unix)]
    #[test]
    fn links_leading_back_to_one_another_are_a_loop_not_a_dangling_link() {
        // Before: reported as a "dangling link".
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("b.jpg", dir.path().join("a.jpg")).unwrap();
        std::os::unix::fs::symlink("a.jpg", dir.path().join("b.jpg")).unwrap();
        std::os::unix::fs::symlink("nowhere.jpg", dir.path().join("c.jpg")).unwrap();
        let s = scan(dir.path()).unwrap();
        let reason = |name: &str| {
            s.unusable.iter().find(|(p, _)| p == name).map(|(_, r)| r.clone()).unwrap_or_default()
        };
        assert!(reason("a.jpg").contains("link loop"), "{:?}", s.unusable);
        assert!(reason("b.jpg").contains("link loop"), "{:?}", s.unusable);
        assert!(reason("c.jpg").contains("dangling"), "{:?}", s.unusable);
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
