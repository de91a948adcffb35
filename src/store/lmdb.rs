//! LMDB store (through `heed`, as Meilisearch does): one environment holding the index
//! description, the item records (JSON), the vectors (little-endian f32) and the
//! partition's centroids.
//!
//! LMDB's copy-on-write B-tree commits a transaction atomically; a process killed at any
//! point leaves the last committed state, which is what an interrupted run must keep.

use std::path::{Path, PathBuf};

use heed::types::{Bytes, SerdeJson, Str, U32};
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, RoTxn, RwTxn};

use super::{
    Change, FORMAT_VERSION, IndexInfo, ItemRecord, KeptFile, Store, StoreError, check_dims,
    check_file_name, check_version,
};

/// LMDB's data file in an index folder (only this file names it).
const DATA_FILE: &str = "data.mdb";
/// LMDB's lock file, which belongs to the folder it is in and is never copied.
const LOCK_FILE: &str = "lock.mdb";
const INFO_KEY: &str = "info";
const NEXT_KEY: &str = "next_key";
const CENTROIDS_KEY: &str = "centroids";
const GENERATION_KEY: &str = "generation";
const VERSION_KEY: &str = "version";
/// Virtual address space reserved for the map; the file only grows as data is written.
const MAP_SIZE: usize = 1 << 40;

type Counters = Database<'static, Str, U32<heed::byteorder::BigEndian>>;
type Meta = Database<'static, Str, SerdeJson<IndexInfo>>;
type Items = Database<'static, Str, SerdeJson<ItemRecord>>;
type Vectors = Database<'static, Str, Bytes>;

fn open_env(dir: &Path) -> Result<Env, StoreError> {
    // SAFETY: heed requires that the environment's files are not modified by anything but
    // LMDB while open; lookalike only touches them through this type.
    Ok(unsafe { EnvOpenOptions::new().map_size(MAP_SIZE).max_dbs(8).open(dir) }?)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { action, path, source }
}

/// An index on disk.
pub struct LmdbStore {
    env: Env,
    path: PathBuf,
    meta: Meta,
    items: Items,
    vectors: Vectors,
    /// Absent in a v1 index opened read-only.
    counters: Option<Counters>,
    /// The partition's centroids (absent in an older index opened read-only).
    partition: Option<Vectors>,
}

impl LmdbStore {
    /// Whether `dir` holds a store (it may still lack a description).
    pub fn is_index(dir: &Path) -> bool {
        dir.join(DATA_FILE).is_file()
    }

    /// Bytes the store's data file takes on disk (0 when it cannot be read).
    pub fn disk_bytes(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(DATA_FILE)).map_or(0, |m| m.len())
    }

    /// Copy the index in `dir` into the empty or new folder `to` (the store, the model
    /// and every other file at its top level; not added photos): a scratch copy to write
    /// into. Nothing may write to `dir` meanwhile.
    pub fn copy_index(dir: &Path, to: &Path) -> Result<(), StoreError> {
        if !Self::is_index(dir) {
            return Err(StoreError::NotAnIndex(dir.display().to_string()));
        }
        std::fs::create_dir_all(to).map_err(io("create", to))?;
        if Self::is_index(to) {
            return Err(StoreError::Backend(format!("{} already holds an index", to.display())));
        }
        for entry in std::fs::read_dir(dir).map_err(io("read", dir))? {
            let entry = entry.map_err(io("read", dir))?;
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && entry.file_name() != LOCK_FILE {
                std::fs::copy(entry.path(), to.join(entry.file_name()))
                    .map_err(io("copy", &entry.path()))?;
            }
        }
        Ok(())
    }

    /// Open the index in `dir` for writing, creating the folder and an empty store if
    /// needed, and upgrading an older format in place (one transaction).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let env = open_env(dir)?;
        let wtxn = env.write_txn()?;
        let (meta, items, vectors, counters, partition) = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> Result<_, StoreError> {
                let meta = dbo.create_database(wtxn, Some("meta"))?;
                let items = dbo.create_database(wtxn, Some("items"))?;
                let vectors = dbo.create_database(wtxn, Some("vectors"))?;
                let counters = dbo.create_database(wtxn, Some("counters"))?;
                let partition = dbo.create_database(wtxn, Some("partition"))?;
                if let Some(info) = meta.get(wtxn, INFO_KEY)? {
                    check_version(&info)?;
                    if info.format_version < FORMAT_VERSION {
                        // A v2 index's HNSW graph is no longer used: free its pages.
                        let graph: Option<Database<Bytes, Bytes>> =
                            dbo.open_database(wtxn, Some("ann"))?;
                        if let Some(g) = graph {
                            g.clear(wtxn)?;
                        }
                        upgrade(wtxn, meta, items, counters, info)?;
                    }
                }
                Ok(CommitOrAbort::<_, ()>::Commit((meta, items, vectors, counters, partition)))
            })?
            .commit()
            .ok_or_else(|| StoreError::Backend("opening the index was aborted".into()))?;
        Ok(Self {
            env,
            path: dir.to_path_buf(),
            meta,
            items,
            vectors,
            counters: Some(counters),
            partition: Some(partition),
        })
    }

    /// Open an existing index without changing it; an empty or missing one is an error.
    /// Items can still be written to a current-format index opened this way.
    pub fn open_existing(dir: &Path) -> Result<Self, StoreError> {
        let not_index = || StoreError::NotAnIndex(dir.display().to_string());
        if !Self::is_index(dir) {
            return Err(not_index());
        }
        let env = open_env(dir)?;
        let rtxn = env.read_txn()?;
        let (meta, items, vectors, counters, partition) = env
            .open_databases_and_commit(rtxn, |dbo, rtxn| -> Result<_, StoreError> {
                Ok(CommitOrAbort::<_, ()>::Commit((
                    dbo.open_database(rtxn, Some("meta"))?,
                    dbo.open_database(rtxn, Some("items"))?,
                    dbo.open_database(rtxn, Some("vectors"))?,
                    dbo.open_database(rtxn, Some("counters"))?,
                    dbo.open_database(rtxn, Some("partition"))?,
                )))
            })?
            .commit()
            .ok_or_else(not_index)?;
        let (Some(meta), Some(items), Some(vectors)) = (meta, items, vectors) else {
            return Err(not_index());
        };
        let store =
            Self { env, path: dir.to_path_buf(), meta, items, vectors, counters, partition };
        check_version(&store.info()?.ok_or_else(not_index)?)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn next_key(&self, txn: &RoTxn) -> Result<u32, StoreError> {
        let Some(c) = self.counters else { return Ok(0) };
        Ok(c.get(txn, NEXT_KEY)?.unwrap_or(0))
    }

    fn set_next_key(&self, wtxn: &mut RwTxn, key: u32) -> Result<(), StoreError> {
        let c = self.counters.ok_or_else(read_only)?;
        Ok(c.put(wtxn, NEXT_KEY, &key)?)
    }
}

/// v1 → v2: keys in id order (what a v1 index's readers assume).
/// v2 → v3: nothing to move (the graph's pages are freed by the caller); the next `index`
/// run partitions the index.
fn upgrade<'t>(
    wtxn: &mut RwTxn,
    meta: Database<'t, Str, SerdeJson<IndexInfo>>,
    items: Database<'t, Str, SerdeJson<ItemRecord>>,
    counters: Database<'t, Str, U32<heed::byteorder::BigEndian>>,
    mut info: IndexInfo,
) -> Result<(), StoreError> {
    if info.format_version < 2 {
        let records: Vec<(String, ItemRecord)> = items
            .iter(wtxn)?
            .map(|kv| kv.map(|(k, v)| (k.to_string(), v)))
            .collect::<Result<_, _>>()?;
        let mut next = 0u32;
        for (key, (id, mut record)) in (0u32..).zip(records) {
            record.key = Some(key);
            items.put(wtxn, &id, &record)?;
            next = key + 1;
        }
        counters.put(wtxn, NEXT_KEY, &next)?;
    }
    info.format_version = FORMAT_VERSION;
    Ok(meta.put(wtxn, INFO_KEY, &info)?)
}

fn read_only() -> StoreError {
    StoreError::Backend("this index was opened read-only".into())
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

fn read_generation(bytes: Option<&[u8]>) -> Result<u64, StoreError> {
    read_counter(GENERATION_KEY, bytes)
}

/// A u64 counter kept in the partition table (absent: 0).
fn read_counter(name: &str, bytes: Option<&[u8]>) -> Result<u64, StoreError> {
    match bytes {
        None => Ok(0),
        Some(b) => b.try_into().map(u64::from_le_bytes).map_err(|_| StoreError::Corrupt {
            id: name.into(),
            message: format!("{} bytes", b.len()),
        }),
    }
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Store for LmdbStore {
    fn info(&self) -> Result<Option<IndexInfo>, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.meta.get(&rtxn, INFO_KEY)?)
    }

    fn apply(&self, info: Option<&IndexInfo>, changes: &[Change]) -> Result<Vec<u32>, StoreError> {
        let mut wtxn = self.env.write_txn()?;
        let effective = match info {
            Some(i) => Some(i.clone()),
            None => self.meta.get(&wtxn, INFO_KEY)?,
        };
        check_dims(effective.as_ref(), changes)?;
        if let Some(i) = info {
            self.meta.put(&mut wtxn, INFO_KEY, i)?;
        }
        if changes.is_empty() {
            wtxn.commit()?;
            return Ok(Vec::new());
        }
        if self.counters.is_none() {
            return Err(read_only());
        }
        let mut next = self.next_key(&wtxn)?;
        let mut keys = Vec::new();
        for c in changes {
            match c {
                Change::Put { id, record, vector } => {
                    let key = next;
                    next = next.checked_add(1).ok_or_else(|| {
                        StoreError::Backend("the index has used up its 2^32 item keys".into())
                    })?;
                    let record = ItemRecord { key: Some(key), ..record.clone() };
                    self.items.put(&mut wtxn, id, &record)?;
                    self.vectors.put(&mut wtxn, id, &encode_vector(vector))?;
                    keys.push(key);
                }
                Change::Record { id, record } => {
                    let Some(old) = self.items.get(&wtxn, id)? else {
                        // Dropping the transaction aborts it: nothing of the batch lands.
                        return Err(StoreError::Corrupt {
                            id: id.clone(),
                            message: "record update for a missing item".into(),
                        });
                    };
                    let record = ItemRecord { key: old.key, ..record.clone() };
                    self.items.put(&mut wtxn, id, &record)?;
                }
                Change::Delete { id } => {
                    self.items.delete(&mut wtxn, id)?;
                    self.vectors.delete(&mut wtxn, id)?;
                }
                Change::Centroids(c) => {
                    let db = self.partition.ok_or_else(read_only)?;
                    let generation = read_generation(db.get(&wtxn, GENERATION_KEY)?)?;
                    db.put(&mut wtxn, GENERATION_KEY, &(generation + 1).to_le_bytes())?;
                    if c.is_empty() {
                        db.delete(&mut wtxn, CENTROIDS_KEY)?;
                    } else {
                        db.put(&mut wtxn, CENTROIDS_KEY, &encode_vector(c))?;
                    }
                }
            }
        }
        self.set_next_key(&mut wtxn, next)?;
        // A v2 index opened as it is has no partition table: its writes go uncounted, and
        // other processes on it do not follow them (`index` upgrades it).
        if let Some(db) = self.partition {
            let version = read_counter(VERSION_KEY, db.get(&wtxn, VERSION_KEY)?)?;
            db.put(&mut wtxn, VERSION_KEY, &(version + 1).to_le_bytes())?;
        }
        wtxn.commit()?;
        Ok(keys)
    }

    fn get(&self, id: &str) -> Result<Option<(ItemRecord, Vec<f32>)>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let Some(record) = self.items.get(&rtxn, id)? else { return Ok(None) };
        let bytes = self.vectors.get(&rtxn, id)?.ok_or_else(|| StoreError::Corrupt {
            id: id.to_string(),
            message: "record without a vector".into(),
        })?;
        Ok(Some((record, decode_vector(id, bytes)?)))
    }

    fn centroids(&self) -> Result<Option<Vec<f32>>, StoreError> {
        let Some(db) = self.partition else { return Ok(None) };
        let rtxn = self.env.read_txn()?;
        let Some(bytes) = db.get(&rtxn, CENTROIDS_KEY)? else { return Ok(None) };
        decode_vector(CENTROIDS_KEY, bytes).map(Some)
    }

    fn partition_generation(&self) -> Result<u64, StoreError> {
        let Some(db) = self.partition else { return Ok(0) };
        let rtxn = self.env.read_txn()?;
        read_generation(db.get(&rtxn, GENERATION_KEY)?)
    }

    fn version(&self) -> Result<u64, StoreError> {
        let Some(db) = self.partition else { return Ok(0) };
        let rtxn = self.env.read_txn()?;
        read_counter(VERSION_KEY, db.get(&rtxn, VERSION_KEY)?)
    }

    fn len(&self) -> Result<usize, StoreError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.items.len(&rtxn)? as usize)
    }

    fn records(&self) -> Result<Vec<(String, ItemRecord)>, StoreError> {
        let rtxn = self.env.read_txn()?;
        let mut out = Vec::new();
        for kv in self.items.iter(&rtxn)? {
            let (k, v) = kv?;
            out.push((k.to_string(), v));
        }
        Ok(out)
    }

    fn for_each(&self, f: &mut dyn FnMut(&str, &ItemRecord, &[f32])) -> Result<(), StoreError> {
        let rtxn = self.env.read_txn()?;
        // Both tables are keyed by id, so walking them side by side pairs them up.
        let mut vectors = self.vectors.iter(&rtxn)?;
        for kv in self.items.iter(&rtxn)? {
            let (id, record) = kv?;
            let (vid, bytes) = vectors.next().transpose()?.ok_or_else(|| StoreError::Corrupt {
                id: id.to_string(),
                message: "record without a vector".into(),
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

    fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_file_name(name)?;
        let path = self.path.join(name);
        // Only a regular file of the folder's own: never a link out of it, never a FIFO.
        match std::fs::symlink_metadata(&path) {
            Ok(m) if !m.is_file() => {
                return Err(StoreError::Backend(format!(
                    "{} is not a regular file",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            _ => {}
        }
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        // Aside under a name no other write uses, then renamed: a crash never leaves half a
        // file under the final name, and two writes of one file never share a temporary.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        check_file_name(name)?;
        let path = self.path.join(name);
        let fail = |e: std::io::Error| io("write", &path)(e);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, bytes).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(e));
        }
        Ok(())
    }

    fn remove_file(&self, name: &str) -> Result<(), StoreError> {
        check_file_name(name)?;
        let path = self.path.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &path)(e)),
        }
    }

    fn list_files(&self, dir: &str) -> Result<Vec<KeptFile>, StoreError> {
        check_file_name(dir)?;
        let entries = match std::fs::read_dir(self.path.join(dir)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot list {}: {e}",
                    self.path.join(dir).display()
                )));
            }
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            // Regular files only: the sweep must never follow a link out of the folder.
            let Ok(meta) = entry.metadata() else { continue };
            let Some(file) = entry.file_name().to_str().map(str::to_string) else { continue };
            if !meta.is_file() {
                continue;
            }
            let age = meta.modified().ok().and_then(|t| t.elapsed().ok());
            files.push(KeptFile { name: format!("{dir}/{file}"), age });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }
}
