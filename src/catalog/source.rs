//! Where a catalogue's photos are read from: a folder of this machine, or a prefix in
//! object storage (`s3://BUCKET/PREFIX`, see [`crate::bucket`]). Both are scanned by the
//! same rules (photos by extension, id = file stem, the first of a repeated id kept) and
//! give the same [`Scan`], so indexing does not care which it has.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{CatalogError, MAX_PHOTO_BYTES, Metadata, Photo, Scan, read_photo};
use crate::bucket::{BlockingBucket, Bucket, BucketAddress, BucketError};

/// The metadata table looked for beside the photos when none is named.
pub const METADATA_FILE: &str = "styles.csv";

/// A metadata table found for a catalogue: its name (path or address), and the table or
/// why it cannot be used.
#[derive(Debug)]
pub struct Table {
    pub name: String,
    pub table: Result<Metadata, CatalogError>,
}

/// A catalogue's photos, in a folder or a bucket.
#[derive(Debug, Clone)]
pub enum Source {
    Folder(PathBuf),
    Bucket(BlockingBucket),
}

impl Source {
    /// The catalogue named by `location`: an `s3://` address, or a folder.
    pub fn open(location: &Path) -> Result<Self, CatalogError> {
        match location.to_str().filter(|s| BucketAddress::is_address(s)) {
            Some(address) => {
                let bucket = Bucket::open(BucketAddress::parse(address)?)?;
                Ok(Self::Bucket(bucket.blocking()?))
            }
            None => Ok(Self::Folder(location.to_path_buf())),
        }
    }

    /// What the index records as its catalogue: the canonical folder, or the address.
    pub fn describe(&self) -> Option<String> {
        match self {
            Self::Folder(dir) => std::fs::canonicalize(dir).ok().map(|p| p.display().to_string()),
            Self::Bucket(b) => Some(b.bucket().address().to_string()),
        }
    }

    /// Every photo, in path order.
    pub fn scan(&self) -> Result<Scan, CatalogError> {
        match self {
            Self::Folder(dir) => super::scan(dir),
            Self::Bucket(b) => {
                let mut out = Scan::default();
                let mut seen = HashSet::new();
                for object in b.list()? {
                    // A "folder marker" (an empty object whose key ends in '/').
                    if object.rel.ends_with('/') {
                        continue;
                    }
                    out.consider(&mut seen, Path::new(&object.rel), object.rel.clone());
                }
                Ok(out)
            }
        }
    }

    /// A photo's bytes (at most [`MAX_PHOTO_BYTES`]).
    pub fn read(&self, photo: &Photo) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Folder(_) => read_photo(&photo.path),
            Self::Bucket(b) => b.get(&photo.rel, MAX_PHOTO_BYTES).map_err(std::io::Error::other),
        }
    }

    /// The metadata table: the one named (a local file), else [`METADATA_FILE`] beside the
    /// photos if there is one (`None`: no table). A table that cannot be used is returned
    /// as such: the caller decides whether that stops the run; a store that does not
    /// answer is an error.
    pub fn metadata(&self, named: Option<&Path>) -> Result<Option<Table>, CatalogError> {
        let read = |path: &Path| Table {
            name: path.display().to_string(),
            table: Metadata::read_csv(path),
        };
        if let Some(path) = named {
            return Ok(Some(read(path)));
        }
        match self {
            Self::Folder(dir) => {
                let path = dir.join(METADATA_FILE);
                Ok(path.is_file().then(|| read(&path)))
            }
            Self::Bucket(b) => {
                let name = format!("{}/{METADATA_FILE}", b.bucket().address());
                match b.get(METADATA_FILE, MAX_PHOTO_BYTES) {
                    Ok(bytes) => {
                        let table = Metadata::parse(&bytes, Path::new(&name));
                        Ok(Some(Table { name, table }))
                    }
                    Err(BucketError::NotFound { .. }) => Ok(None),
                    // The store failing is not "no table": indexing without the metadata
                    // would strip every item of it.
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}
