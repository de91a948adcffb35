//! LMDB store (through `heed`, as Meilisearch does): one environment holding the index
//! description, the item records (JSON), the vectors (little-endian f32) and the HNSW
//! graph over them (`hannoy`, Meilisearch's LMDB-native HNSW).
//!
//! LMDB's copy-on-write B-tree commits a transaction atomically; a process killed at any
//! point leaves the last committed state, which is what an interrupted run must keep.
//! The graph's vectors change in the same transaction as the items, so the graph can lag
//! (not yet linked) but never disagree: a lagging graph is simply not used.

use std::path::{Path, PathBuf};

use hannoy::distances::Cosine;
use hannoy::{Reader, Writer};
use heed::types::{Bytes, SerdeJson, Str, U32};
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, RoTxn, RwTxn};
use rand::SeedableRng;
use roaring::RoaringBitmap;

use super::{
    AnnHit, Change, FORMAT_VERSION, IndexInfo, ItemRecord, Store, StoreError, check_dims,
    check_version,
};

const INFO_KEY: &str = "info";
const NEXT_KEY: &str = "next_key";
/// Virtual address space reserved for the map; the file only grows as data is written.
const MAP_SIZE: usize = 1 << 40;
/// The graph's index number inside its database (hannoy can hold several).
const ANN_INDEX: u16 = 0;
/// HNSW links per node on the upper layers and on the ground layer, and the breadth of
/// the search that places a new node (BENCHMARKS.md, "Scale").
const ANN_M: usize = 16;
const ANN_M0: usize = 32;
/// 48 rather than hannoy's usual 100+: links 2.4x faster (10 vs 24 s at 44k) for the same
/// recall where it matters: 0.999 vs 0.9995 at the planner's ef on the real catalogue; on
/// near-duplicate clusters a broader build search fills link lists with cluster mates
/// (100k in clusters of 23: 0.945 at 48, 0.933 at 128, 0.888 at 400; 1M: 0.913 vs 0.918).
/// BENCHMARKS.md, "Scale".
const ANN_EF_CONSTRUCTION: usize = 48;
/// Link pruning tolerance (hannoy's `alpha`; 1.0 = plain HNSW, above = DiskANN-like, more
/// links kept). 1.2 measured worse on near-duplicate clusters (recall@10 0.77 against 0.93
/// at 100k, `bench ann --sources`): the extra links go to cluster mates, not across.
const ANN_ALPHA: f32 = 1.0;

/// How the graph is linked (`bench ann` sweeps these; the store uses the defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphParams {
    pub ef_construction: usize,
    pub alpha: f32,
}

impl Default for GraphParams {
    fn default() -> Self {
        Self { ef_construction: ANN_EF_CONSTRUCTION, alpha: ANN_ALPHA }
    }
}
/// Seed of the graph's level draws: the same items give the same graph.
const ANN_SEED: u64 = 0x5EED;

type AnnDb = hannoy::Database<'static, Cosine>;
type Counters = Database<'static, Str, U32<heed::byteorder::BigEndian>>;
type Meta = Database<'static, Str, SerdeJson<IndexInfo>>;
type Items = Database<'static, Str, SerdeJson<ItemRecord>>;
type Vectors = Database<'static, Str, Bytes>;

impl From<heed::Error> for StoreError {
    fn from(e: heed::Error) -> Self {
        backend(e)
    }
}

fn open_env(dir: &Path) -> Result<Env, StoreError> {
    // SAFETY: heed requires that the environment's files are not modified by anything but
    // LMDB while open; lookalike only touches them through this type.
    unsafe { EnvOpenOptions::new().map_size(MAP_SIZE).max_dbs(8).open(dir) }.map_err(backend)
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
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
    ann: Option<AnnDb>,
}

impl LmdbStore {
    /// Open the index in `dir` for writing, creating the folder and an empty store if
    /// needed, and upgrading an older format in place (one transaction).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        let env = open_env(dir)?;
        let wtxn = env.write_txn()?;
        let (meta, items, vectors, counters, ann) = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> Result<_, StoreError> {
                let meta = dbo.create_database(wtxn, Some("meta"))?;
                let items = dbo.create_database(wtxn, Some("items"))?;
                let vectors = dbo.create_database(wtxn, Some("vectors"))?;
                let counters = dbo.create_database(wtxn, Some("counters"))?;
                let ann = dbo.create_database(wtxn, Some("ann"))?;
                if let Some(info) = meta.get(wtxn, INFO_KEY)? {
                    check_version(&info)?;
                    if info.format_version < FORMAT_VERSION {
                        upgrade(wtxn, meta, items, vectors, counters, ann, info)?;
                    }
                }
                Ok(CommitOrAbort::<_, ()>::Commit((meta, items, vectors, counters, ann)))
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
            ann: Some(ann),
        })
    }

    /// Open an existing index without changing it; an empty or missing one is an error.
    /// Items can still be written to a current-format index opened this way.
    pub fn open_existing(dir: &Path) -> Result<Self, StoreError> {
        let not_index = || StoreError::NotAnIndex(dir.display().to_string());
        if !dir.join("data.mdb").is_file() {
            return Err(not_index());
        }
        let env = open_env(dir)?;
        let rtxn = env.read_txn()?;
        let (meta, items, vectors, counters, ann) = env
            .open_databases_and_commit(rtxn, |dbo, rtxn| -> Result<_, StoreError> {
                Ok(CommitOrAbort::<_, ()>::Commit((
                    dbo.open_database(rtxn, Some("meta"))?,
                    dbo.open_database(rtxn, Some("items"))?,
                    dbo.open_database(rtxn, Some("vectors"))?,
                    dbo.open_database(rtxn, Some("counters"))?,
                    dbo.open_database(rtxn, Some("ann"))?,
                )))
            })?
            .commit()
            .ok_or_else(not_index)?;
        let (Some(meta), Some(items), Some(vectors)) = (meta, items, vectors) else {
            return Err(not_index());
        };
        let store = Self { env, path: dir.to_path_buf(), meta, items, vectors, counters, ann };
        check_version(&store.info()?.ok_or_else(not_index)?)?;
        Ok(store)
    }

    /// Link pending graph changes with explicit parameters.
    pub fn build_ann_with(&self, params: GraphParams) -> Result<(), StoreError> {
        let Some(info) = self.info()? else { return Ok(()) };

        let writer = self.ann_writer(info.dim).ok_or_else(read_only)?;
        let mut wtxn = self.env.write_txn().map_err(backend)?;
        if !writer.need_build(&wtxn).map_err(backend)? {
            return Ok(());
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(ANN_SEED);
        writer
            .builder(&mut rng)
            .ef_construction(params.ef_construction)
            .alpha(params.alpha)
            .build::<ANN_M, ANN_M0>(&mut wtxn)
            .map_err(backend)?;
        wtxn.commit().map_err(backend)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ann_writer(&self, dim: usize) -> Option<Writer<'static, Cosine>> {
        self.ann.map(|db| Writer::new(db, ANN_INDEX, dim))
    }

    fn next_key(&self, txn: &RoTxn) -> Result<u32, StoreError> {
        let Some(c) = self.counters else { return Ok(0) };
        Ok(c.get(txn, NEXT_KEY).map_err(backend)?.unwrap_or(0))
    }

    fn set_next_key(&self, wtxn: &mut RwTxn, key: u32) -> Result<(), StoreError> {
        let c = self.counters.ok_or_else(read_only)?;
        c.put(wtxn, NEXT_KEY, &key).map_err(backend)
    }

    /// The key of a stored record; v1 records have none (and v1 stores are read-only).
    fn key_of(id: &str, record: &ItemRecord) -> Result<u32, StoreError> {
        record.key.ok_or_else(|| StoreError::Corrupt {
            id: id.to_string(),
            message: "item without a key in a writable index".into(),
        })
    }
}

/// v1 → v2: keys in id order (what a v1 index's readers assume), vectors into the graph's
/// database. The graph itself is linked by the next [`Store::build_ann`].
fn upgrade<'t>(
    wtxn: &mut RwTxn,
    meta: Database<'t, Str, SerdeJson<IndexInfo>>,
    items: Database<'t, Str, SerdeJson<ItemRecord>>,
    vectors: Database<'t, Str, Bytes>,
    counters: Database<'t, Str, U32<heed::byteorder::BigEndian>>,
    ann: hannoy::Database<'t, Cosine>,
    mut info: IndexInfo,
) -> Result<(), StoreError> {
    let records: Vec<(String, ItemRecord)> = items
        .iter(wtxn)?
        .map(|kv| kv.map(|(k, v)| (k.to_string(), v)))
        .collect::<Result<_, _>>()?;
    let writer = Writer::new(ann, ANN_INDEX, info.dim);
    let mut next = 0u32;
    for (key, (id, mut record)) in (0u32..).zip(records) {
        let bytes = vectors.get(wtxn, &id)?.ok_or_else(|| StoreError::Corrupt {
            id: id.clone(),
            message: "record without a vector".into(),
        })?;
        let vector = decode_vector(&id, bytes)?;
        record.key = Some(key);
        items.put(wtxn, &id, &record)?;
        writer.add_item(wtxn, key, &vector).map_err(backend)?;
        next = key + 1;
    }
    counters.put(wtxn, NEXT_KEY, &next)?;
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

fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Store for LmdbStore {
    fn info(&self) -> Result<Option<IndexInfo>, StoreError> {
        let rtxn = self.env.read_txn().map_err(backend)?;
        self.meta.get(&rtxn, INFO_KEY).map_err(backend)
    }

    fn apply(&self, info: Option<&IndexInfo>, changes: &[Change]) -> Result<Vec<u32>, StoreError> {
        let mut wtxn = self.env.write_txn().map_err(backend)?;
        let effective = match info {
            Some(i) => Some(i.clone()),
            None => self.meta.get(&wtxn, INFO_KEY).map_err(backend)?,
        };
        check_dims(effective.as_ref(), changes)?;
        if let Some(i) = info {
            self.meta.put(&mut wtxn, INFO_KEY, i).map_err(backend)?;
        }
        if changes.is_empty() {
            wtxn.commit().map_err(backend)?;
            return Ok(Vec::new());
        }
        let dim = effective.as_ref().map_or(0, |i| i.dim);
        let ann = self.ann_writer(dim).ok_or_else(read_only)?;
        let mut next = self.next_key(&wtxn)?;
        let mut keys = Vec::new();
        for c in changes {
            match c {
                Change::Put { id, record, vector } => {
                    if let Some(old) = self.items.get(&wtxn, id).map_err(backend)? {
                        ann.del_item(&mut wtxn, Self::key_of(id, &old)?).map_err(backend)?;
                    }
                    let key = next;
                    next = next.checked_add(1).ok_or_else(|| {
                        StoreError::Backend("the index has used up its 2^32 item keys".into())
                    })?;
                    let record = ItemRecord { key: Some(key), ..record.clone() };
                    self.items.put(&mut wtxn, id, &record).map_err(backend)?;
                    self.vectors.put(&mut wtxn, id, &encode_vector(vector)).map_err(backend)?;
                    ann.add_item(&mut wtxn, key, vector).map_err(backend)?;
                    keys.push(key);
                }
                Change::Record { id, record } => {
                    let Some(old) = self.items.get(&wtxn, id).map_err(backend)? else {
                        // Dropping the transaction aborts it: nothing of the batch lands.
                        return Err(StoreError::Corrupt {
                            id: id.clone(),
                            message: "record update for a missing item".into(),
                        });
                    };
                    let record = ItemRecord { key: old.key, ..record.clone() };
                    self.items.put(&mut wtxn, id, &record).map_err(backend)?;
                }
                Change::Delete { id } => {
                    if let Some(old) = self.items.get(&wtxn, id).map_err(backend)? {
                        ann.del_item(&mut wtxn, Self::key_of(id, &old)?).map_err(backend)?;
                    }
                    self.items.delete(&mut wtxn, id).map_err(backend)?;
                    self.vectors.delete(&mut wtxn, id).map_err(backend)?;
                }
            }
        }
        self.set_next_key(&mut wtxn, next)?;
        wtxn.commit().map_err(backend)?;
        Ok(keys)
    }

    fn build_ann(&self) -> Result<(), StoreError> {
        self.build_ann_with(GraphParams::default())
    }

    fn ann_search(
        &self,
        query: &[f32],
        count: usize,
        ef: usize,
        candidates: Option<&RoaringBitmap>,
    ) -> Result<Option<Vec<AnnHit>>, StoreError> {
        let Some(db) = self.ann else { return Ok(None) };
        let rtxn = self.env.read_txn().map_err(backend)?;
        let reader = match Reader::<Cosine>::open(&rtxn, ANN_INDEX, db) {
            Ok(r) => r,
            // Never built, or changes not linked yet: exact search answers instead.
            Err(hannoy::Error::MissingMetadata(_) | hannoy::Error::NeedBuild(_)) => {
                return Ok(None);
            }
            Err(e) => return Err(backend(e)),
        };
        if reader.dimensions() != query.len() {
            return Err(StoreError::DimensionMismatch {
                id: "query".into(),
                expected: reader.dimensions(),
                got: query.len(),
            });
        }
        let mut q = reader.nns(count);
        q.ef_search(ef);
        if let Some(c) = candidates {
            q.candidates(c);
        }
        let found = q.by_vector(&rtxn, query).map_err(backend)?;
        // hannoy's cosine distance is (1 - cos) / 2.
        Ok(Some(found.into_nns().into_iter().map(|(k, d)| (k, 1.0 - 2.0 * d)).collect()))
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
