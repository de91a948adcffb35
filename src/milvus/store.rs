//! [`MilvusStore`]: the [`Store`] of an index kept in a Milvus collection, so that every
//! command above the store (engine, server, eval) works on it unchanged.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::client::{Client, Column, Field, in_list};
use super::{MilvusAddress, MilvusError};
use crate::store::{
    Change, IndexInfo, ItemRecord, Store, StoreError, check_dims, check_file_name, check_version,
};

/// Longest id a collection takes (bytes).
const MAX_ID: usize = 512;
/// Longest serialised record or description (bytes): Milvus's VarChar limit.
const MAX_TEXT: usize = 65_535;
/// Rows per query when walking a collection (Milvus answers at most 16,384).
const PAGE: usize = 4_096;
/// Ids per `in [...]` expression.
const IDS_PER_CALL: usize = 1_000;

/// The index's counters, one row of the meta collection.
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
}

impl std::fmt::Debug for MilvusStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MilvusStore").field("address", &self.address.to_string()).finish()
    }
}

fn backend(e: MilvusError) -> StoreError {
    StoreError::Backend(e.to_string())
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
        })
    }

    /// The same store, walking collections `page` rows at a time (tests use small pages to
    /// walk several).
    pub fn with_page(mut self, page: usize) -> Self {
        self.page = page.clamp(1, 16_384);
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
        let values = self.meta_values(&["counters".into()]).map_err(backend)?;
        read_counters(values.get("counters"))
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

    /// Create both collections for vectors of `dim` unless they exist.
    fn ensure_collections(&self, dim: usize) -> Result<(), MilvusError> {
        let (client, items, meta) = (self.client.clone(), self.items().to_string(), self.meta());
        self.run(async move {
            if !client.has_collection(&items).await? {
                let fields = [
                    ("id", Field::Text(MAX_ID)),
                    ("key", Field::Int),
                    ("record", Field::Text(MAX_TEXT)),
                ];
                client.create_collection(&items, &fields, dim).await?;
            }
            if !client.has_collection(&meta).await? {
                let fields = [("key", Field::Text(64)), ("value", Field::Text(MAX_TEXT))];
                client.create_collection(&meta, &fields, dim).await?;
            }
            Ok(())
        })?;
        self.present.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Items `ids` with their records and vectors.
    fn get_many(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, (ItemRecord, Vec<f32>)>, StoreError> {
        let mut out = BTreeMap::new();
        if ids.is_empty() || !self.exists().map_err(backend)? {
            return Ok(out);
        }
        for chunk in ids.chunks(IDS_PER_CALL) {
            let (client, items) = (self.client.clone(), self.items().to_string());
            let expr = in_list("id", chunk);
            let cols =
                self.run(async move {
                    client.query(&items, &expr, &["id", "record", "vector"], None).await
                })
                .map_err(backend)?;
            out.extend(rows(&cols)?);
        }
        Ok(out)
    }

    /// Visit every item, in id order. Items are read by windows of their keys, `page`
    /// keys a window: keys are unique, so a window holds at most `page` items and one
    /// query of that limit gets them all, in whatever order the server keeps (milvus-lite
    /// answers in insertion order, so a cursor on ids would skip rows).
    fn walk(
        &self,
        with_vectors: bool,
        f: &mut dyn FnMut(String, ItemRecord, Vec<f32>),
    ) -> Result<(), StoreError> {
        if !self.exists().map_err(backend)? {
            return Ok(());
        }
        let end = u64::from(self.counters()?.next_key);
        let mut all = BTreeMap::new();
        let mut start = 0u64;
        while start < end {
            let (client, items) = (self.client.clone(), self.items().to_string());
            let expr = format!("key >= {start} && key < {}", start + self.page as u64);
            let fields: &'static [&'static str] =
                if with_vectors { &["id", "record", "vector"] } else { &["id", "record"] };
            let page = self.page;
            let cols = self
                .run(async move { client.query(&items, &expr, fields, Some(page)).await })
                .map_err(backend)?;
            all.extend(rows(&cols)?);
            start += self.page as u64;
        }
        for (id, (record, vector)) in all {
            f(id, record, vector);
        }
        Ok(())
    }
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

/// Rows of an items query, sorted by id (vectors empty when not asked for).
fn rows(cols: &[(String, Column)]) -> Result<BTreeMap<String, (ItemRecord, Vec<f32>)>, StoreError> {
    let ids = strings(cols, "id");
    let records = strings(cols, "record");
    let vectors = cols.iter().find_map(|(n, c)| match c {
        Column::Vectors { dim, data } if n == "vector" => Some((*dim, data)),
        _ => None,
    });
    let mut out = BTreeMap::new();
    for (i, (id, record)) in ids.into_iter().zip(records).enumerate() {
        let record: ItemRecord = serde_json::from_str(&record)
            .map_err(|e| StoreError::Corrupt { id: id.clone(), message: e.to_string() })?;
        let vector = match vectors {
            Some((dim, data)) => {
                data.get(i * dim..(i + 1) * dim).map(<[f32]>::to_vec).ok_or_else(|| {
                    StoreError::Corrupt { id: id.clone(), message: "vector missing".into() }
                })?
            }
            None => Vec::new(),
        };
        out.insert(id, (record, vector));
    }
    Ok(out)
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

/// Bytes of a kept file per meta row: their base64 (64,000 characters) fits a text field.
const FILE_CHUNK: usize = 48_000;
/// Meta rows written per call when storing a file (about 4 MB).
const CHUNKS_PER_CALL: usize = 64;

/// The meta row describing a kept file: where its chunks are and what they add up to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileHead {
    name: String,
    size: usize,
    /// BLAKE3 of the bytes: a read that met a concurrent replacement notices it.
    hash: String,
    chunks: usize,
    /// Names this version's chunk rows, so that a replacement never overwrites the chunks
    /// a reader may be reading.
    nonce: String,
}

/// The meta keys of a file: its head, and the prefix of its chunks (keys are at most 64
/// characters, names up to 1,024 bytes, so both go by a hash of the name).
fn file_head_key(name: &str) -> String {
    format!("file/{}", &blake3::hash(name.as_bytes()).to_hex()[..32])
}

fn file_chunk_key(name: &str, nonce: &str, i: usize) -> String {
    format!("chunk/{}/{nonce}/{i:06}", &blake3::hash(name.as_bytes()).to_hex()[..16])
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

impl MilvusStore {
    fn file_head(&self, name: &str) -> Result<Option<FileHead>, StoreError> {
        let key = file_head_key(name);
        let values = self.meta_values(std::slice::from_ref(&key)).map_err(backend)?;
        values
            .get(&key)
            .map(|v| {
                serde_json::from_str(v)
                    .map_err(|e| StoreError::Corrupt { id: name.into(), message: e.to_string() })
            })
            .transpose()
    }

    fn delete_meta(&self, keys: Vec<String>) -> Result<(), StoreError> {
        for chunk in keys.chunks(IDS_PER_CALL) {
            let (client, meta, ids) = (self.client.clone(), self.meta(), chunk.to_vec());
            self.run(async move { client.delete(&meta, "key", &ids).await }).map_err(backend)?;
        }
        Ok(())
    }

    fn read_chunks(&self, head: &FileHead) -> Result<Option<Vec<u8>>, StoreError> {
        use base64::Engine as _;
        let keys: Vec<String> =
            (0..head.chunks).map(|i| file_chunk_key(&head.name, &head.nonce, i)).collect();
        let mut found = HashMap::new();
        for chunk in keys.chunks(CHUNKS_PER_CALL) {
            found.extend(self.meta_values(chunk).map_err(backend)?);
        }
        let mut bytes = Vec::with_capacity(head.size);
        for key in &keys {
            let Some(text) = found.get(key) else { return Ok(None) };
            let part = base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| {
                StoreError::Corrupt { id: head.name.clone(), message: e.to_string() }
            })?;
            bytes.extend(part);
        }
        Ok((blake3::hash(&bytes).to_hex().as_str() == head.hash).then_some(bytes))
    }
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
        // Everything that can refuse the batch is checked before anything is written; the
        // description and the counters come in one read.
        let meta = self.meta_values(&["info".into(), "counters".into()]).map_err(backend)?;
        let stored = read_info(meta.get("info"))?;
        let effective = info.cloned().or(stored);
        check_dims(effective.as_ref(), changes)?;
        let Some(effective) = effective else {
            return if changes.is_empty() {
                Ok(Vec::new())
            } else {
                Err(StoreError::Backend("items written before the index is described".into()))
            };
        };
        let dim = effective.dim;
        let record_ids: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Record { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect();
        let existing = self.get_many(&record_ids)?;
        // The batch's end state per id: Some(row) written, None deleted.
        let mut counters = read_counters(meta.get("counters"))?;
        let mut keys = Vec::new();
        let mut rows: BTreeMap<String, Option<(ItemRecord, Vec<f32>)>> = BTreeMap::new();
        let mut centroids = None;
        for c in changes {
            match c {
                Change::Put { id, record, vector } => {
                    if id.len() > MAX_ID {
                        return Err(StoreError::Backend(format!(
                            "id {id:?} is longer than the {MAX_ID} bytes a Milvus index takes"
                        )));
                    }
                    let key = counters.next_key;
                    counters.next_key += 1;
                    keys.push(key);
                    rows.insert(
                        id.clone(),
                        Some((ItemRecord { key: Some(key), ..record.clone() }, vector.clone())),
                    );
                }
                Change::Record { id, record } => {
                    let current = match rows.get(id) {
                        Some(Some(row)) => Some(row.clone()),
                        Some(None) => None,
                        None => existing.get(id).cloned(),
                    };
                    let Some((old, vector)) = current else {
                        return Err(StoreError::Corrupt {
                            id: id.clone(),
                            message: "record update for a missing item".into(),
                        });
                    };
                    rows.insert(
                        id.clone(),
                        Some((ItemRecord { key: old.key, ..record.clone() }, vector)),
                    );
                }
                Change::Delete { id } => {
                    rows.insert(id.clone(), None);
                }
                Change::Centroids(c) => centroids = Some(c.clone()),
            }
        }
        let mut puts = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut deletes = Vec::new();
        for (id, row) in rows {
            match row {
                Some((record, vector)) => {
                    puts.3.push(i64::from(record.key.unwrap_or_default()));
                    puts.1.push(text(&id, "record", &record)?);
                    puts.0.push(id);
                    puts.2.extend(vector);
                }
                None => deletes.push(id),
            }
        }
        let info_text = info.map(|i| text("info", "description", i)).transpose()?;

        // Writes: description and reserved keys first, so that no key is ever handed out
        // twice even if the batch is cut short; the version last.
        self.ensure_collections(dim).map_err(backend)?;
        let mut first = Vec::new();
        if let Some(t) = info_text {
            first.push(("info".to_string(), t, filler(dim)));
        }
        if !keys.is_empty() {
            first.push(("counters".into(), text("counters", "counters", &counters)?, filler(dim)));
        }
        if !first.is_empty() {
            self.put_meta(dim, first).map_err(backend)?;
        }
        for (((ids, item_keys), records), vectors) in puts
            .0
            .chunks(IDS_PER_CALL)
            .zip(puts.3.chunks(IDS_PER_CALL))
            .zip(puts.1.chunks(IDS_PER_CALL))
            .zip(puts.2.chunks(IDS_PER_CALL * dim.max(1)))
        {
            let (client, items) = (self.client.clone(), self.items().to_string());
            let columns = vec![
                ("id", Column::Strings(ids.to_vec())),
                ("key", Column::Ints(item_keys.to_vec())),
                ("record", Column::Strings(records.to_vec())),
                ("vector", Column::Vectors { dim, data: vectors.to_vec() }),
            ];
            self.run(async move { client.upsert(&items, columns).await }).map_err(backend)?;
        }
        for chunk in deletes.chunks(IDS_PER_CALL) {
            let (client, items, ids) =
                (self.client.clone(), self.items().to_string(), chunk.to_vec());
            self.run(async move { client.delete(&items, "id", &ids).await }).map_err(backend)?;
        }
        if let Some(c) = centroids {
            let cells = c.len().checked_div(dim).unwrap_or(0);
            let rows: Vec<_> = c
                .chunks(dim.max(1))
                .enumerate()
                .map(|(i, v)| (centroid_key(i), String::new(), v.to_vec()))
                .collect();
            for chunk in rows.chunks(IDS_PER_CALL) {
                self.put_meta(dim, chunk.to_vec()).map_err(backend)?;
            }
            let stale: Vec<String> = (cells..counters.cells).map(centroid_key).collect();
            for chunk in stale.chunks(IDS_PER_CALL) {
                let (client, meta, ids) = (self.client.clone(), self.meta(), chunk.to_vec());
                self.run(async move { client.delete(&meta, "key", &ids).await })
                    .map_err(backend)?;
            }
            counters.cells = cells;
            counters.generation += 1;
        }
        if !changes.is_empty() {
            counters.version += 1;
            let t = text("counters", "counters", &counters)?;
            self.put_meta(dim, vec![("counters".into(), t, filler(dim))]).map_err(backend)?;
        }
        Ok(keys)
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
        Ok(self.counters()?.version)
    }

    fn len(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        self.walk(false, &mut |_, _, _| n += 1)?;
        Ok(n)
    }

    fn records(&self) -> Result<Vec<(String, ItemRecord)>, StoreError> {
        let mut out = Vec::new();
        self.walk(false, &mut |id, r, _| out.push((id, r)))?;
        Ok(out)
    }

    fn for_each(&self, f: &mut dyn FnMut(&str, &ItemRecord, &[f32])) -> Result<(), StoreError> {
        self.walk(true, &mut |id, r, v| f(&id, &r, &v))
    }

    fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_file_name(name)?;
        // A replacement landing between reading the head and its chunks shows as missing
        // chunks or a wrong hash: read the new head and try again.
        for _ in 0..3 {
            let Some(head) = self.file_head(name)? else { return Ok(None) };
            if let Some(bytes) = self.read_chunks(&head)? {
                return Ok(Some(bytes));
            }
        }
        Err(StoreError::Corrupt {
            id: name.into(),
            message: "the file's parts do not add up to what its description says".into(),
        })
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        use base64::Engine as _;
        check_file_name(name)?;
        let info = self.info()?.ok_or_else(|| StoreError::NotAnIndex(self.address.to_string()))?;
        let dim = info.dim;
        let old = self.file_head(name)?;
        let head = FileHead {
            name: name.into(),
            size: bytes.len(),
            hash: blake3::hash(bytes).to_hex().to_string(),
            chunks: bytes.len().div_ceil(FILE_CHUNK),
            nonce: nonce(name),
        };
        // Chunks first, under a new nonce; then the head that names them; then the old
        // chunks go. A write cut short leaves the old file readable (and a few orphan rows).
        let rows: Vec<(String, String, Vec<f32>)> = bytes
            .chunks(FILE_CHUNK)
            .enumerate()
            .map(|(i, part)| {
                let text = base64::engine::general_purpose::STANDARD.encode(part);
                (file_chunk_key(name, &head.nonce, i), text, filler(dim))
            })
            .collect();
        for group in rows.chunks(CHUNKS_PER_CALL) {
            self.put_meta(dim, group.to_vec()).map_err(backend)?;
        }
        let text = text(name, "file description", &head)?;
        self.put_meta(dim, vec![(file_head_key(name), text, filler(dim))]).map_err(backend)?;
        if let Some(old) = old {
            self.delete_meta(
                (0..old.chunks).map(|i| file_chunk_key(name, &old.nonce, i)).collect(),
            )?;
        }
        Ok(())
    }

    fn remove_file(&self, name: &str) -> Result<(), StoreError> {
        check_file_name(name)?;
        let Some(head) = self.file_head(name)? else { return Ok(()) };
        self.delete_meta(vec![file_head_key(name)])?;
        self.delete_meta((0..head.chunks).map(|i| file_chunk_key(name, &head.nonce, i)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Change;

    /// A fresh collection name per test, on the shared test server.
    fn store(name: &str) -> MilvusStore {
        let (host, port) = super::super::test_server::address();
        let collection = format!("{name}_{}", std::process::id());
        let address = MilvusAddress { host, port, collection };
        let store = MilvusStore::open(&address).unwrap();
        store.drop_all().unwrap();
        store
    }

    #[test]
    fn milvus_store_passes_the_suite() {
        // Pages of 1 row: walking the collection takes several queries.
        let store = store("suite").with_page(1);
        crate::store::suite::run_all(&store);
        store.drop_all().unwrap();
    }

    #[test]
    fn a_second_process_sees_the_same_index() {
        let a = store("shared");
        let b = MilvusStore::open(a.address()).unwrap();
        assert!(b.info().unwrap().is_none() && !b.exists().unwrap());
        let info = crate::store::suite::info(3);
        let record = ItemRecord { path: "x.jpg".into(), hash: "h".into(), ..Default::default() };
        let put = |id: &str| Change::Put {
            id: id.into(),
            record: record.clone(),
            vector: vec![0.0, 0.6, 0.8],
        };
        let many: Vec<Change> = (0..25).map(|i| put(&format!("item-{i:02}"))).collect();
        let keys = a.apply(Some(&info), &many).unwrap();
        assert_eq!(b.info().unwrap().map(|i| i.dim), Some(3));
        assert_eq!((b.version().unwrap(), b.len().unwrap()), (1, 25));
        // Ids that would break an unquoted expression are stored and found as they are.
        let odd = ["a\"b", "x\" or id != \"", "back\\slash", "new\nline", "ünï cødé"];
        a.apply(None, &odd.iter().map(|id| put(id)).collect::<Vec<_>>()).unwrap();
        for id in odd {
            assert_eq!(b.get(id).unwrap().map(|(r, _)| r.path), Some("x.jpg".into()), "{id:?}");
        }
        assert!(b.get("x").unwrap().is_none());
        a.apply(None, &[Change::Delete { id: odd[1].into() }]).unwrap();
        assert!(b.get(odd[1]).unwrap().is_none() && b.get(odd[0]).unwrap().is_some());
        // Walking pages of 7 meets every item once, in id order, with its vector.
        let mut seen = Vec::new();
        b.with_page(7)
            .for_each(&mut |id, r, v| {
                assert_eq!(v, [0.0, 0.6, 0.8]);
                seen.push((id.to_string(), r.key));
            })
            .unwrap();
        let mut want: Vec<String> = (0..25).map(|i| format!("item-{i:02}")).collect();
        want.extend([odd[0], odd[2], odd[3], odd[4]].map(String::from));
        want.sort();
        assert_eq!(seen.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), want);
        let first = seen.iter().find(|(id, _)| id == "item-00").map(|(_, key)| *key);
        assert_eq!(first, Some(Some(keys[0])));
        a.drop_all().unwrap();
    }

    #[test]
    fn an_unreachable_server_is_named() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let address = MilvusAddress { host: "127.0.0.1".into(), port, collection: "c".into() };
        let e = MilvusStore::open(&address).unwrap_err().to_string();
        assert!(e.contains("cannot reach Milvus") && e.contains(&address.to_string()), "{e}");
    }
}
