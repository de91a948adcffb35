//! Persistence of an index: its description, its items' records and their vectors.
//!
//! Everything goes through the small [`Store`] trait so the same test suite runs against
//! every backend: [`LmdbStore`] (the on-disk, transactional one) and [`MemoryStore`]
//! (tests, throw-away indexes). A batch of changes is applied atomically or not at all,
//! which is what makes an interrupted indexing run safe. The store knows nothing of
//! images, models or HTTP.
//!
//! Every item gets a key, a `u32` the store hands out once and never again: an item that
//! is replaced gets a new key. (A folder's keys are stored with the items; a Milvus
//! collection's are each process's own, since its writers cannot share a counter.) Keys name items in the in-memory index's bitmaps (facets,
//! partition cells). The partition (centroids, each item's cell in its record) is derived
//! data: written by whoever trains it, kept by the store as given.

mod lmdb;
mod memory;
mod reads;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use lmdb::LmdbStore;
pub use memory::MemoryStore;
pub use reads::{Found, ItemReads, passes};

use crate::model::ModelSpec;

/// Version of the on-disk layout; bumped on any incompatible change. Every version ever
/// released keeps a golden index under `tests/fixtures/` that must still open.
///
/// - 1: items, vectors and the description.
/// - 2: items carry a key, and an HNSW graph (hannoy) lives beside them. A v1 index opens
///   as it is (keys are then the items' places in id order, which is also what the upgrade
///   on the first write gives them) and is searched exactly until upgraded.
/// - 3: a partition (k-means centroids, and each item's cell in its record) is the
///   approximate index, in place of v2's graph (no longer written or read; the upgrade
///   frees it). A v2 index opens as it is and is searched exactly until the next `index`
///   run partitions it.
pub const FORMAT_VERSION: u32 = 3;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition of the store's own (no underlying error to name).
    #[error("index storage error: {0}")]
    Backend(String),
    /// A file of the index (`action`: what was being done with it).
    #[error("index storage error: cannot {action} {}", .path.display())]
    Io { action: &'static str, path: std::path::PathBuf, source: std::io::Error },
    /// LMDB's own error, kept as it is.
    #[error("index storage error")]
    Lmdb(#[from] heed::Error),
    /// The error of a store on a server (a Milvus collection's `MilvusError`), kept as it
    /// is for callers that look at it.
    #[error("index storage error")]
    Remote(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(
        "index format version {found} is newer than this lookalike supports ({supported}); upgrade lookalike"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("index record for '{id}' is corrupt: {message}")]
    Corrupt { id: String, message: String },
    #[error("vector for '{id}' has {got} dimensions, the index has {expected}")]
    DimensionMismatch { id: String, expected: usize, got: usize },
    #[error("{0} is not a lookalike index (no index description found)")]
    NotAnIndex(String),
    #[error("{name:?} is not a file name an index keeps: {reason}")]
    BadFileName { name: String, reason: &'static str },
}

/// What an index is: format, model, dimension, metadata columns (CSV order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexInfo {
    pub format_version: u32,
    pub model: ModelSpec,
    /// BLAKE3 of the ONNX file, so that a changed model is noticed.
    pub model_hash: String,
    pub dim: usize,
    pub columns: Vec<String>,
    /// Absolute path of the catalogue folder the photos were read from (item paths are
    /// relative to it), so that the server and reports can show them.
    #[serde(default)]
    pub catalog: Option<String>,
    /// Weight of the colour histogram appended to every vector (0: none; then `dim` is the
    /// model's). See [`crate::colour`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub colour_weight: f32,
}

fn is_zero(w: &f32) -> bool {
    *w == 0.0
}

/// Everything known about an item except its vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ItemRecord {
    /// Image path relative to the catalogue folder.
    pub path: String,
    /// BLAKE3 of the image file's bytes: a changed file is re-embedded.
    pub hash: String,
    pub metadata: BTreeMap<String, String>,
    /// The item's key, given by the store when the item is put (absent in v1 indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u32>,
    /// The photo was added by `add` or the API and is kept in the index folder (`path` is
    /// relative to it); re-indexing the catalogue folder leaves such items alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub added: bool,
    /// The item's cell in the index's partition (absent before the index is partitioned;
    /// such items are scanned by every approximate search until `index` places them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<u32>,
}

/// One change inside an atomic batch.
#[derive(Debug, Clone)]
pub enum Change {
    /// Insert or replace an item with its vector.
    Put {
        id: String,
        record: ItemRecord,
        vector: Vec<f32>,
    },
    /// Replace an item's record, keeping its vector.
    Record {
        id: String,
        record: ItemRecord,
    },
    Delete {
        id: String,
    },
    /// Replace the partition's centroids (`cells x dim` floats; empty: no partition).
    Centroids(Vec<f32>),
}

/// A backend holding an index.
pub trait Store: Send + Sync {
    /// The index description, `None` for a new, empty store.
    fn info(&self) -> Result<Option<IndexInfo>, StoreError>;
    /// Apply `changes` (and `info`, if given) in one transaction. Returns the key given to
    /// each `Put`, in order. A `Record` keeps its item's key.
    fn apply(&self, info: Option<&IndexInfo>, changes: &[Change]) -> Result<Vec<u32>, StoreError>;
    fn get(&self, id: &str) -> Result<Option<(ItemRecord, Vec<f32>)>, StoreError>;
    /// The partition's centroids (`cells x dim`, row-major), `None` when not partitioned.
    fn centroids(&self) -> Result<Option<Vec<f32>>, StoreError>;
    /// How many times the centroids were replaced: a snapshot whose partition is of an
    /// older generation must be reloaded before it places new items.
    fn partition_generation(&self) -> Result<u64, StoreError>;
    /// How many batches of item changes have been committed (an `apply` with at least
    /// one change counts once): a reader whose snapshot is of an older version has missed
    /// writes, perhaps by another process on the same index.
    fn version(&self) -> Result<u64, StoreError>;
    fn len(&self) -> Result<usize, StoreError>;
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
    /// Every item's record, in id order.
    fn records(&self) -> Result<Vec<(String, ItemRecord)>, StoreError>;
    /// Visit every item with its vector, in id order.
    fn for_each(&self, f: &mut dyn FnMut(&str, &ItemRecord, &[f32])) -> Result<(), StoreError>;
    /// The ids of the `k` items nearest `query` by inner product, best first with their
    /// scores, among those whose metadata passes `conditions` (per column, one of its
    /// values; columns combine; values lower-cased and compared with the item's
    /// lower-cased) other than `exclude`, when the backend searches where it keeps the
    /// vectors (a Milvus collection; it may be approximate). `None` when it only keeps
    /// them: the in-memory index searches a folder.
    fn nearest(
        &self,
        query: &[f32],
        k: usize,
        conditions: &[(String, Vec<String>)],
        exclude: Option<&str>,
    ) -> Result<Option<Vec<(String, f32)>>, StoreError> {
        let _ = (query, k, conditions, exclude);
        Ok(None)
    }
    /// Whether [`Store::nearest`] may search (a snapshot then keeps the store to ask it;
    /// one of a store that never searches need not keep it open).
    fn searches(&self) -> bool {
        false
    }
    /// The reads this store answers where it keeps the items (a Milvus collection), so
    /// that a query server needs no snapshot of them; `None` when it only keeps them (a
    /// folder: its readers load a snapshot).
    fn reads(&self) -> Option<&dyn ItemReads> {
        None
    }
    /// Settle what was written, at the end of a bulk write (an `index` or `repartition`
    /// run): a Milvus collection seals its segments so that its vector index covers them
    /// (until then new rows are searched through a coarser interim index); a folder's
    /// commits already are final.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// A file the index keeps beside its items (its trained projection, the photos of
    /// items added through `add` or the API), by a relative name such as `photos/x.jpg`
    /// (see [`check_file_name`]); `None` when there is none.
    fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Write a file whole: readers see the old bytes or the new ones, never a part.
    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// Remove a file; one that is not there is no error.
    fn remove_file(&self, name: &str) -> Result<(), StoreError>;
    /// The files kept under the folder `dir` (a relative name such as `photos`; not its
    /// subfolders), by full name (`photos/x.jpg`) with how long ago each was written
    /// (`None` when the backend cannot tell): what an orphan sweep looks through.
    fn list_files(&self, dir: &str) -> Result<Vec<KeptFile>, StoreError>;
}

/// A file an index keeps, as [`Store::list_files`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFile {
    pub name: String,
    pub age: Option<std::time::Duration>,
}

/// Longest name of a file an index keeps (bytes).
pub const MAX_FILE_NAME: usize = 1024;

/// A kept file's name is relative and plain: `/`-separated parts, none empty, `.` or
/// `..`, no backslash or control character. What reaches a store comes from lookalike's
/// own code, but a record read back from a damaged index must not name `/etc/passwd`.
pub fn check_file_name(name: &str) -> Result<(), StoreError> {
    let bad = |reason| Err(StoreError::BadFileName { name: name.to_string(), reason });
    if name.is_empty() || name.len() > MAX_FILE_NAME {
        return bad("empty or longer than 1024 bytes");
    }
    if name.chars().any(|c| c.is_control() || c == '\\') {
        return bad("it holds a control character or a backslash");
    }
    if name.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return bad("it is absolute, or a part of it is empty, `.` or `..`");
    }
    Ok(())
}

/// Whether the kept file `name` lies directly in the folder `dir` (not in a subfolder of
/// it): what [`Store::list_files`] lists.
pub(crate) fn directly_in(dir: &str, name: &str) -> bool {
    name.strip_prefix(dir)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|file| !file.contains('/'))
}

/// Check a stored description can be read by this version.
pub(crate) fn check_version(info: &IndexInfo) -> Result<(), StoreError> {
    if info.format_version > FORMAT_VERSION {
        return Err(StoreError::UnsupportedVersion {
            found: info.format_version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Check every vector in `changes` has the index's dimension before anything is written.
pub(crate) fn check_dims(info: Option<&IndexInfo>, changes: &[Change]) -> Result<(), StoreError> {
    info.map_or(Ok(()), |info| check_dim(info.dim, changes))
}

/// Check every vector in `changes` has `dim` dimensions.
pub(crate) fn check_dim(dim: usize, changes: &[Change]) -> Result<(), StoreError> {
    for c in changes {
        if let Change::Put { id, vector, .. } = c
            && vector.len() != dim
        {
            return Err(StoreError::DimensionMismatch {
                id: id.clone(),
                expected: dim,
                got: vector.len(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod suite;
