//! LMDB store (through `heed`, as Meilisearch does): one environment holding the index
//! description, the item records (JSON) and the vectors (little-endian f32).
//!
//! LMDB's copy-on-write B-tree commits a transaction atomically; a process killed at any
//! point leaves the last committed state, which is what an interrupted run must keep.

use std::path::{Path, PathBuf};

use heed::types::{Bytes, SerdeJson, Str};
use heed::{Database, Env, EnvOpenOptions};

use super::{Change, IndexInfo, ItemRecord, Store, StoreError, check_dims, check_version};

const INFO_KEY: &str = "info";
/// Virtual address space reserved for the map; the file only grows as data is written.
const MAP_SIZE: usize = 1 << 40;

fn open_env(dir: &Path) -> Result<Env, StoreError> {
    // SAFETY: heed requires that the environment's files are not modified by anything but
    // LMDB while open; lookalike only touches them through this type.
    unsafe { EnvOpenOptions::new().map_size(MAP_SIZE).max_dbs(4).open(dir) }.map_err(backend)
}

fn backend(e: heed::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// An index on disk.
pub struct LmdbStore {
    env: Env,
    path: PathBuf,
    meta: Database<Str, SerdeJson<IndexInfo>>,
    items: Database<Str, SerdeJson<ItemRecord>>,
    vectors: Database<Str, Bytes>,
}

impl LmdbStore {
    /// Open the index in `dir`, creating the folder and an empty store if needed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        let env = open_env(dir)?;
        if let Some(store) = Self::from_env(&env, dir)? {
            return Ok(store);
        }
        let mut wtxn = env.write_txn().map_err(backend)?;
        let meta = env.create_database(&mut wtxn, Some("meta")).map_err(backend)?;
        let items = env.create_database(&mut wtxn, Some("items")).map_err(backend)?;
        let vectors = env.create_database(&mut wtxn, Some("vectors")).map_err(backend)?;
        wtxn.commit().map_err(backend)?;
        Ok(Self { env, path: dir.to_path_buf(), meta, items, vectors })
    }

    /// Open an existing index without writing to it; an empty or missing one is an error.
    pub fn open_existing(dir: &Path) -> Result<Self, StoreError> {
        if !dir.join("data.mdb").is_file() {
            return Err(StoreError::NotAnIndex(dir.display().to_string()));
        }
        let env = open_env(dir)?;
        let store = Self::from_env(&env, dir)?
            .ok_or_else(|| StoreError::NotAnIndex(dir.display().to_string()))?;
        if store.info()?.is_none() {
            return Err(StoreError::NotAnIndex(dir.display().to_string()));
        }
        Ok(store)
    }

    /// The store in `env` if its tables exist; readers never take the writer's lock.
    fn from_env(env: &Env, dir: &Path) -> Result<Option<Self>, StoreError> {
        let rtxn = env.read_txn().map_err(backend)?;
        let meta = env.open_database(&rtxn, Some("meta")).map_err(backend)?;
        let items = env.open_database(&rtxn, Some("items")).map_err(backend)?;
        let vectors = env.open_database(&rtxn, Some("vectors")).map_err(backend)?;
        rtxn.commit().map_err(backend)?;
        let (Some(meta), Some(items), Some(vectors)) = (meta, items, vectors) else {
            return Ok(None);
        };
        let store = Self { env: env.clone(), path: dir.to_path_buf(), meta, items, vectors };
        if let Some(info) = store.info()? {
            check_version(&info)?;
        }
        Ok(Some(store))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn decode_vector(id: &str, bytes: &[u8]) -> Result<Vec<f32>, StoreError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Corrupt {
            id: id.to_string(),
            message: format!("vector of {} bytes", bytes.len()),
        });
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Store for LmdbStore {
    fn info(&self) -> Result<Option<IndexInfo>, StoreError> {
        let rtxn = self.env.read_txn().map_err(backend)?;
        self.meta.get(&rtxn, INFO_KEY).map_err(backend)
    }

    fn apply(&self, info: Option<&IndexInfo>, changes: &[Change]) -> Result<(), StoreError> {
        let mut wtxn = self.env.write_txn().map_err(backend)?;
        let effective = match info {
            Some(i) => Some(i.clone()),
            None => self.meta.get(&wtxn, INFO_KEY).map_err(backend)?,
        };
        check_dims(effective.as_ref(), changes)?;
        if let Some(i) = info {
            self.meta.put(&mut wtxn, INFO_KEY, i).map_err(backend)?;
        }
        for c in changes {
            match c {
                Change::Put { id, record, vector } => {
                    self.items.put(&mut wtxn, id, record).map_err(backend)?;
                    self.vectors.put(&mut wtxn, id, &encode_vector(vector)).map_err(backend)?;
                }
                Change::Record { id, record } => {
                    if self.vectors.get(&wtxn, id).map_err(backend)?.is_none() {
                        // Dropping the transaction aborts it: nothing of the batch lands.
                        return Err(StoreError::Corrupt {
                            id: id.clone(),
                            message: "record update for a missing item".into(),
                        });
                    }
                    self.items.put(&mut wtxn, id, record).map_err(backend)?;
                }
                Change::Delete { id } => {
                    self.items.delete(&mut wtxn, id).map_err(backend)?;
                    self.vectors.delete(&mut wtxn, id).map_err(backend)?;
                }
            }
        }
        wtxn.commit().map_err(backend)
    }

    fn get(&self, id: &str) -> Result<Option<(ItemRecord, Vec<f32>)>, StoreError> {
        let rtxn = self.env.read_txn().map_err(backend)?;
        let Some(record) = self.items.get(&rtxn, id).map_err(backend)? else { return Ok(None) };
        let bytes = self.vectors.get(&rtxn, id).map_err(backend)?.ok_or_else(|| {
            StoreError::Corrupt { id: id.to_string(), message: "record without a vector".into() }
        })?;
        Ok(Some((record, decode_vector(id, bytes)?)))
    }

    fn len(&self) -> Result<usize, StoreError> {
        let rtxn = self.env.read_txn().map_err(backend)?;
        Ok(self.items.len(&rtxn).map_err(backend)? as usize)
    }

    fn records(&self) -> Result<Vec<(String, ItemRecord)>, StoreError> {
        let rtxn = self.env.read_txn().map_err(backend)?;
        let mut out = Vec::new();
        for kv in self.items.iter(&rtxn).map_err(backend)? {
            let (k, v) = kv.map_err(backend)?;
            out.push((k.to_string(), v));
        }
        Ok(out)
    }

    fn for_each(&self, f: &mut dyn FnMut(&str, &ItemRecord, &[f32])) -> Result<(), StoreError> {
        let rtxn = self.env.read_txn().map_err(backend)?;
        // Both tables are keyed by id, so walking them side by side pairs them up.
        let mut vectors = self.vectors.iter(&rtxn).map_err(backend)?;
        for kv in self.items.iter(&rtxn).map_err(backend)? {
            let (id, record) = kv.map_err(backend)?;
            let (vid, bytes) = vectors.next().transpose().map_err(backend)?.ok_or_else(|| {
                StoreError::Corrupt {
                    id: id.to_string(),
                    message: "record without a vector".into(),
                }
            })?;
            if vid != id {
                return Err(StoreError::Corrupt {
                    id: id.to_string(),
                    message: format!("vectors out of step at '{vid}'"),
                });
            }
            let v = decode_vector(id, bytes)?;
            f(id, &record, &v);
        }
        Ok(())
    }
}
