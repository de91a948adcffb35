//! [`MilvusStore`]: the [`Store`] of an index kept in a Milvus collection, so that every
//! command above the store (engine, server, eval) works on it unchanged, and whose
//! approximate searches run in Milvus (`search.rs`).
//!
//! Several processes may write one collection at once (`index --shard`, servers taking
//! writes), and Milvus has no transactions or compare-and-set, so nothing here is
//! read, changed and written back by item writes:
//! - an item's key (what names it in a process's in-memory bitmaps) is the process's own,
//!   handed out as it reads or writes the item; the collection stores a row key derived
//!   from the id alone, which walks page by;
//! - the version is the sum of one row per writing process, each written only by its
//!   owner, so two writers never lose each other's count (a reader sees it move by more
//!   than its own batch, and reloads).
//!
//! What is still read and written back: a partition's replacement (centroids,
//! generation), which one process at a time does (`index` without `--shard`,
//! `repartition`); and a record change (new metadata, a cell), which rewrites its item's
//! row from the vector it read, so two processes changing one item at once keep one
//! change (shards never share an item).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod columns;
mod files;
mod items;
mod reads;
mod search;
mod writes;

use items::{LocalKeys, row_key};

use super::client::{Client, Column, Field, VectorIndexSpec, hybrid_now, in_list};
use super::{MilvusAddress, MilvusError, VectorIndexKind};
use crate::store::{Change, IndexInfo, ItemRecord, Store, StoreError, check_version};

/// Longest id a collection takes (bytes).
const MAX_ID: usize = 512;
/// Longest serialised record or description (bytes): Milvus's VarChar limit.
const MAX_TEXT: usize = 65_535;
/// Rows per query when walking a collection (Milvus answers at most 16,384).
const PAGE: usize = 4_096;
/// Ids per `in [...]` expression.
const IDS_PER_CALL: usize = 1_000;

/// The partition's counters, one row of the meta collection. (`next_key` and `version`
/// are what collections written by lookalike before writers were concurrent kept there:
/// read, never changed.)
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct Counters {
    next_key: u32,
    generation: u64,
    version: u64,
    cells: usize,
}

/// An index in Milvus: items in `COLLECTION`, everything else in `COLLECTION_lookalike`.
pub struct MilvusStore {
    address: MilvusAddress,
    client: Client,
    runtime: Arc<tokio::runtime::Runtime>,
    page: usize,
    /// Set once the collections are seen to exist: they are created once and removed only
    /// by [`MilvusStore::drop_all`], so later reads need not ask the server again.
    present: std::sync::atomic::AtomicBool,
    /// The vectors' dimension, once read or written (it never changes).
    dim: std::sync::OnceLock<usize>,
    /// The items collection's fields, once known (forgotten when it is dropped).
    schema: std::sync::Mutex<Option<columns::Schema>>,
    /// What searches must see (a hybrid timestamp): everything this store has read by
    /// walking the collection (a snapshot's load) or written, so that a search never
    /// misses an item the caller's snapshot holds.
    seen: std::sync::atomic::AtomicU64,
    keys: std::sync::Mutex<LocalKeys>,
    /// This store's version row (`version/<writer>`) and the batches it committed; the
    /// lock also keeps this store's batches one at a time.
    writer: String,
    writes: std::sync::Mutex<u64>,
    /// The vector index the items collection gets when this store creates it.
    vector_index: VectorIndexKind,
}

impl std::fmt::Debug for MilvusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MilvusStore").field("address", &self.address.to_string()).finish()
    }
}

fn backend(e: MilvusError) -> StoreError {
    StoreError::Remote(Box::new(e))
}

impl MilvusStore {
    /// Connect to the server of `address`; its collections are created by the first write
    /// that carries the index's description.
    pub fn open(address: &MilvusAddress) -> Result<Self, MilvusError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("milvus")
            .enable_all()
            .build()
            .map_err(|e| MilvusError::Connect {
                address: address.to_string(),
                message: format!("cannot start its I/O threads: {e}"),
            })?;
        let runtime = Arc::new(runtime);
        let client = block_on(&runtime, {
            let address = address.clone();
            async move { Client::connect(&address).await }
        })?;
        Ok(Self {
            address: address.clone(),
            client,
            runtime,
            page: PAGE,
            present: Default::default(),
            dim: Default::default(),
            schema: Default::default(),
            seen: Default::default(),
            keys: Default::default(),
            writer: format!("version/{}", nonce("writer")),
            writes: Default::default(),
            vector_index: VectorIndexKind::default(),
        })
    }

    /// The same store, creating the items collection with a `kind` vector index.
    pub fn with_vector_index(mut self, kind: VectorIndexKind) -> Self {
        self.vector_index = kind;
        self
    }

    /// The kind of vector index the items collection has (`None`: no collection yet, or
    /// an index lookalike does not make, such as an operator's FLAT).
    pub fn vector_index(&self) -> Result<Option<VectorIndexKind>, MilvusError> {
        let (client, items) = (self.client.clone(), self.items().to_string());
        let name = self.run(async move {
            if !client.has_collection(&items).await? {
                return Ok(None);
            }
            client.index_type(&items).await
        })?;
        Ok(name.as_deref().and_then(VectorIndexKind::of_milvus_name))
    }

    /// The same store, walking collections `page` rows at a time (tests use small pages to
    /// walk several).
    pub fn with_page(mut self, page: usize) -> Self {
        // One more than a page is asked for, to see whether a window held more.
        self.page = page.clamp(1, 16_383);
        self
    }

    pub fn address(&self) -> &MilvusAddress {
        &self.address
    }

    fn items(&self) -> &str {
        &self.address.collection
    }

    fn meta(&self) -> String {
        format!("{}_lookalike", self.address.collection)
    }

    /// Whether the collection holds an index (its meta collection exists).
    pub fn exists(&self) -> Result<bool, MilvusError> {
        use std::sync::atomic::Ordering;
        if self.present.load(Ordering::Acquire) {
            return Ok(true);
        }
        let (client, meta) = (self.client.clone(), self.meta());
        let present = self.run(async move { client.has_collection(&meta).await })?;
        self.present.store(present, Ordering::Release);
        Ok(present)
    }

    /// Drop both collections (tests; `index --rebuild` of a Milvus index).
    pub fn drop_all(&self) -> Result<(), MilvusError> {
        self.present.store(false, std::sync::atomic::Ordering::Release);
        if let Ok(mut schema) = self.schema.lock() {
            *schema = None;
        }
        for name in [self.items().to_string(), self.meta()] {
            let client = self.client.clone();
            self.run(async move {
                if client.has_collection(&name).await? {
                    client.drop_collection(&name).await?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, MilvusError>> + Send + 'static,
    ) -> Result<T, MilvusError> {
        block_on(&self.runtime, fut)
    }

    /// The values of meta rows `keys` (absent ones left out).
    fn meta_values(&self, keys: &[String]) -> Result<HashMap<String, String>, MilvusError> {
        if !self.exists()? {
            return Ok(HashMap::new());
        }
        let (client, meta) = (self.client.clone(), self.meta());
        let expr = in_list("key", keys);
        let cols =
            self.run(async move { client.query(&meta, &expr, &["key", "value"], None).await })?;
        let keys = strings(&cols, "key");
        let values = strings(&cols, "value");
        Ok(keys.into_iter().zip(values).collect())
    }

    fn counters(&self) -> Result<Counters, StoreError> {
        Ok(self.state()?.0)
    }

    /// The partition's counters and the index's version (the old counter plus every
    /// writer's row), in one query.
    fn state(&self) -> Result<(Counters, u64), StoreError> {
        if !self.exists().map_err(backend)? {
            return Ok((Counters::default(), 0));
        }
        let (client, meta) = (self.client.clone(), self.meta());
        let expr = r#"key == "counters" || key like "version/%""#;
        let cols = self
            .run(async move { client.query(&meta, expr, &["key", "value"], None).await })
            .map_err(backend)?;
        let mut counters = Counters::default();
        let mut writes = 0u64;
        for (key, value) in strings(&cols, "key").into_iter().zip(strings(&cols, "value")) {
            if key == "counters" {
                counters = read_counters(Some(&value))?;
            } else {
                writes += value.parse::<u64>().map_err(|e| StoreError::Corrupt {
                    id: key.clone(),
                    message: format!("not a count of writes: {e}"),
                })?;
            }
        }
        Ok((counters, counters.version + writes))
    }

    /// The vectors' dimension: as written, or from the stored description.
    fn stored_dim(&self) -> Result<Option<usize>, StoreError> {
        if let Some(&d) = self.dim.get() {
            return Ok(Some(d));
        }
        let dim = self.info()?.map(|i| i.dim);
        if let Some(d) = dim {
            let _ = self.dim.set(d);
        }
        Ok(dim)
    }

    /// How many items the collection holds.
    fn count_items(&self) -> Result<u64, StoreError> {
        let (client, items) = (self.client.clone(), self.items().to_string());
        self.run(async move { client.count(&items, "key >= 0").await }).map_err(backend)
    }

    /// Write meta rows (`key`, `value`, and a vector: a centroid, or a filler).
    fn put_meta(
        &self,
        dim: usize,
        rows: Vec<(String, String, Vec<f32>)>,
    ) -> Result<(), MilvusError> {
        let mut keys = Vec::with_capacity(rows.len());
        let mut values = Vec::with_capacity(rows.len());
        let mut vectors = Vec::with_capacity(rows.len() * dim);
        for (k, v, vec) in rows {
            keys.push(k);
            values.push(v);
            vectors.extend(vec);
        }
        let (client, meta) = (self.client.clone(), self.meta());
        self.run(async move {
            client
                .upsert(
                    &meta,
                    vec![
                        ("key", Column::Strings(keys)),
                        ("value", Column::Strings(values)),
                        ("vector", Column::Vectors { dim, data: vectors }),
                    ],
                )
                .await
        })
    }

    /// Create both collections for vectors of `dim` unless they exist; the items get a
    /// field for each of `columns` that can have one (columns.rs).
    fn ensure_collections(&self, dim: usize, columns: &[String]) -> Result<(), MilvusError> {
        let (client, items, meta) = (self.client.clone(), self.items().to_string(), self.meta());
        let column_fields = columns::column_fields(columns);
        let vector_index = self.vector_index;
        self.run(async move {
            let mut item_fields = vec![
                ("id", Field::Text(MAX_ID)),
                ("key", Field::Int),
                ("record", Field::Text(MAX_TEXT)),
                (search::FACETS, Field::Json),
            ];
            item_fields.extend(
                column_fields.iter().map(|c| (c.as_str(), Field::Text(columns::MAX_VALUE))),
            );
            let meta_fields = [("key", Field::Text(64)), ("value", Field::Text(MAX_TEXT))];
            for (name, fields, index) in [
                (&items, &item_fields[..], VectorIndexSpec::of(vector_index)),
                (&meta, &meta_fields[..], VectorIndexSpec::FLAT),
            ] {
                if client.has_collection(name).await? {
                    continue;
                }
                if let Err(e) = client.create_collection(name, fields, dim, index).await {
                    // Another process made it first (shards starting together): use theirs
                    // once it is ready.
                    if !client.has_collection(name).await? {
                        return Err(e);
                    }
                    client.wait_loaded(name).await?;
                }
            }
            Ok(())
        })?;
        self.present.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Searches from now on see what the server holds now.
    fn saw_now(&self) {
        self.seen.fetch_max(hybrid_now(), std::sync::atomic::Ordering::AcqRel);
    }
}

fn poisoned() -> StoreError {
    StoreError::Backend("a thread panicked while holding the store's lock".into())
}

/// Run `fut` on `runtime` and wait for it, from any thread (a server's async handlers
/// included: the future runs on the store's own threads, never on the caller's runtime).
fn block_on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    fut: impl Future<Output = Result<T, MilvusError>> + Send + 'static,
) -> Result<T, MilvusError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().unwrap_or_else(|_| {
        Err(MilvusError::Transport {
            call: "any",
            collection: String::new(),
            message: "the Milvus I/O task stopped".into(),
        })
    })
}

fn strings(cols: &[(String, Column)], name: &str) -> Vec<String> {
    cols.iter()
        .find_map(|(n, c)| match c {
            Column::Strings(s) if n == name => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn centroid_key(i: usize) -> String {
    format!("centroid/{i:06}")
}

fn filler(dim: usize) -> Vec<f32> {
    let mut v = vec![0.0; dim];
    if let Some(first) = v.first_mut() {
        *first = 1.0;
    }
    v
}

fn text(id: &str, what: &str, value: &impl Serialize) -> Result<String, StoreError> {
    let s = serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt { id: id.into(), message: e.to_string() })?;
    if s.len() > MAX_TEXT {
        return Err(StoreError::Backend(format!(
            "the {what} of {id} takes {} bytes, more than the {MAX_TEXT} a Milvus text field holds",
            s.len()
        )));
    }
    Ok(s)
}

fn nonce(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{name}\0{}\0{n}\0{now}", std::process::id());
    blake3::hash(seed.as_bytes()).to_hex()[..16].to_string()
}

fn read_info(value: Option<&String>) -> Result<Option<IndexInfo>, StoreError> {
    let Some(v) = value else { return Ok(None) };
    let info: IndexInfo = serde_json::from_str(v)
        .map_err(|e| StoreError::Corrupt { id: "info".into(), message: e.to_string() })?;
    check_version(&info)?;
    Ok(Some(info))
}

fn read_counters(value: Option<&String>) -> Result<Counters, StoreError> {
    match value {
        None => Ok(Counters::default()),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| StoreError::Corrupt { id: "counters".into(), message: e.to_string() }),
    }
}

impl Store for MilvusStore {
    fn info(&self) -> Result<Option<IndexInfo>, StoreError> {
        let values = self.meta_values(&["info".into()]).map_err(backend)?;
        read_info(values.get("info"))
    }

    fn apply(&self, info: Option<&IndexInfo>, changes: &[Change]) -> Result<Vec<u32>, StoreError> {
        self.write(info, changes)
    }

    fn get(&self, id: &str) -> Result<Option<(ItemRecord, Vec<f32>)>, StoreError> {
        Ok(self.get_many(&[id.to_string()])?.remove(id))
    }

    fn centroids(&self) -> Result<Option<Vec<f32>>, StoreError> {
        let counters = self.counters()?;
        if counters.cells == 0 {
            return Ok(None);
        }
        let mut out = Vec::new();
        let keys: Vec<String> = (0..counters.cells).map(centroid_key).collect();
        for chunk in keys.chunks(IDS_PER_CALL) {
            let (client, meta) = (self.client.clone(), self.meta());
            let expr = in_list("key", chunk);
            let cols = self
                .run(async move { client.query(&meta, &expr, &["key", "vector"], None).await })
                .map_err(backend)?;
            let names = strings(&cols, "key");
            let Some((dim, data)) = cols.iter().find_map(|(n, c)| match c {
                Column::Vectors { dim, data } if n == "vector" => Some((*dim, data.clone())),
                _ => None,
            }) else {
                return Err(StoreError::Corrupt {
                    id: "centroids".into(),
                    message: "no vectors".into(),
                });
            };
            let mut found: Vec<(String, &[f32])> =
                names.into_iter().zip(data.chunks(dim.max(1))).collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            if found.len() != chunk.len() {
                return Err(StoreError::Corrupt {
                    id: "centroids".into(),
                    message: format!("{} of {} centroids found", found.len(), chunk.len()),
                });
            }
            for (_, v) in found {
                out.extend_from_slice(v);
            }
        }
        Ok(Some(out))
    }

    fn partition_generation(&self) -> Result<u64, StoreError> {
        Ok(self.counters()?.generation)
    }

    fn version(&self) -> Result<u64, StoreError> {
        Ok(self.state()?.1)
    }

    fn len(&self) -> Result<usize, StoreError> {
        if !self.exists().map_err(backend)? {
            return Ok(0);
        }
        Ok(self.count_items()? as usize)
    }

    fn records(&self) -> Result<Vec<(String, ItemRecord)>, StoreError> {
        let mut out = Vec::new();
        self.walk(false, &mut |id, r, _| out.push((id, r)))?;
        Ok(out)
    }

    fn for_each(&self, f: &mut dyn FnMut(&str, &ItemRecord, &[f32])) -> Result<(), StoreError> {
        self.walk(true, &mut |id, r, v| f(&id, &r, &v))
    }

    fn nearest(
        &self,
        query: &[f32],
        k: usize,
        conditions: &[(String, Vec<String>)],
        exclude: Option<&str>,
    ) -> Result<Option<Vec<(String, f32)>>, StoreError> {
        self.search_items(query, k, conditions, exclude)
    }

    fn searches(&self) -> bool {
        true
    }

    fn reads(&self) -> Option<&dyn crate::store::ItemReads> {
        // A collection written before facets existed cannot be filtered in Milvus.
        self.schema().ok().filter(|s| s.facets).map(|_| self as &dyn crate::store::ItemReads)
    }

    fn flush(&self) -> Result<(), StoreError> {
        if !self.exists().map_err(backend)? {
            return Ok(());
        }
        let (client, items) = (self.client.clone(), self.items().to_string());
        self.run(async move { client.flush(&items).await }).map_err(backend)
    }

    fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_kept(name)
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_kept(name, bytes)
    }

    fn remove_file(&self, name: &str) -> Result<(), StoreError> {
        self.remove_kept(name)
    }

    fn list_files(&self, dir: &str) -> Result<Vec<crate::store::KeptFile>, StoreError> {
        self.list_kept(dir)
    }
}

#[cfg(test)]
mod tests;
