//! Reading a collection's items: their row keys (from the id alone, the windows walks
//! read by), the keys this process gives them, and the reads (by id, and the walk over
//! the whole collection).

use std::collections::{BTreeMap, HashMap};

use super::{IDS_PER_CALL, MilvusStore, backend, poisoned, strings};
use crate::milvus::client::{Column, Window, in_list};
use crate::store::{ItemRecord, StoreError};

/// Items read, by id: their records and vectors (empty when not asked for).
pub(super) type Rows = BTreeMap<String, (ItemRecord, Vec<f32>)>;

/// Upper end (exclusive) of the items' row keys: 62 bits, so that window arithmetic
/// stays far from an i64's end.
pub(super) const KEY_SPACE: u64 = 1 << 62;

/// An item's row key: the windows walks read by, from its id alone (so every process
/// writing the item gives it the same one), spread evenly over [0, `KEY_SPACE`).
pub(super) fn row_key(id: &str) -> i64 {
    let hash = blake3::hash(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    (u64::from_le_bytes(first) % KEY_SPACE) as i64
}

/// The keys this process has given items, by id with the photo's hash: an item read
/// again keeps its key, one replaced (a new photo, or a `Put`) gets a new one, so
/// whatever a process keeps per key (projected vectors) never outlives the item.
#[derive(Debug, Default)]
pub(super) struct LocalKeys {
    pub(super) next: u32,
    pub(super) by_id: HashMap<String, (String, u32)>,
}

impl LocalKeys {
    pub(super) fn fresh(&mut self, id: &str, hash: &str) -> Result<u32, StoreError> {
        let key = self.next;
        self.next = key.checked_add(1).ok_or_else(|| {
            StoreError::Backend("this process has handed out 2^32 item keys; restart it".into())
        })?;
        self.by_id.insert(id.to_string(), (hash.to_string(), key));
        Ok(key)
    }

    pub(super) fn known(&mut self, id: &str, hash: &str) -> Result<u32, StoreError> {
        match self.by_id.get(id) {
            Some((h, key)) if h == hash => Ok(*key),
            _ => self.fresh(id, hash),
        }
    }
}

impl MilvusStore {
    /// Items `ids` with their records and vectors, given this process's keys.
    pub(super) fn get_many(&self, ids: &[String]) -> Result<Rows, StoreError> {
        let mut out = self.read_many(ids, None)?;
        self.with_local_keys(&mut out)?;
        Ok(out)
    }

    /// Items `ids` with their records (keyless) and vectors, read as of `seen` (a hybrid
    /// timestamp; `None`: every write before the call).
    pub(super) fn read_many(&self, ids: &[String], seen: Option<u64>) -> Result<Rows, StoreError> {
        let mut out = BTreeMap::new();
        if ids.is_empty() || !self.exists().map_err(backend)? {
            return Ok(out);
        }
        for chunk in ids.chunks(IDS_PER_CALL) {
            let (client, items) = (self.client.clone(), self.items().to_string());
            let expr = in_list("id", chunk);
            let fields = ["id", "record", "vector"];
            let cols = self
                .run(async move {
                    client.query_window(&items, &expr, &fields, Window::default(), seen).await
                })
                .map_err(backend)?;
            out.extend(rows(&cols)?);
        }
        Ok(out)
    }

    /// Give read items this process's keys.
    fn with_local_keys(
        &self,
        rows: &mut BTreeMap<String, (ItemRecord, Vec<f32>)>,
    ) -> Result<(), StoreError> {
        let mut keys = self.keys.lock().map_err(|_| poisoned())?;
        for (id, (record, _)) in rows.iter_mut() {
            record.key = Some(keys.known(id, &record.hash)?);
        }
        Ok(())
    }

    /// Visit every item, in id order (see [`MilvusStore::walk_windows`]).
    pub(super) fn walk(
        &self,
        with_vectors: bool,
        f: &mut dyn FnMut(String, ItemRecord, Vec<f32>),
    ) -> Result<(), StoreError> {
        let mut all = BTreeMap::new();
        self.walk_windows(with_vectors, &mut |found| {
            all.extend(found);
            Ok(())
        })?;
        self.with_local_keys(&mut all)?;
        for (id, (record, vector)) in all {
            f(id, record, vector);
        }
        Ok(())
    }

    /// Visit every item by windows of their row keys, one window's items at a time (in id
    /// order within it; records without keys), sized from the collection's count to hold
    /// half a page each; a window that holds more than a page is halved and read again.
    /// (Windows, not a cursor on ids: milvus-lite answers in insertion order, so a cursor
    /// would skip rows.)
    pub(super) fn walk_windows(
        &self,
        with_vectors: bool,
        f: &mut dyn FnMut(Rows) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if !self.exists().map_err(backend)? {
            return Ok(());
        }
        self.saw_now();
        let page = self.page as u64;
        let windows = (2 * self.count_items()?).div_ceil(page).max(1);
        let width = KEY_SPACE.div_ceil(windows);
        let mut todo: Vec<(u64, u64)> =
            (0..windows).rev().map(|i| (i * width, ((i + 1) * width).min(KEY_SPACE))).collect();
        let fields: &'static [&'static str] =
            if with_vectors { &["id", "record", "vector"] } else { &["id", "record"] };
        while let Some((lo, hi)) = todo.pop() {
            if lo >= hi {
                continue;
            }
            let (client, items) = (self.client.clone(), self.items().to_string());
            let expr = format!("key >= {lo} && key < {hi}");
            let limit = self.page + 1;
            let cols = self
                .run(async move { client.query(&items, &expr, fields, Some(limit)).await })
                .map_err(backend)?;
            let found = rows(&cols)?;
            if found.len() > self.page {
                if hi - lo == 1 {
                    return Err(StoreError::Corrupt {
                        id: format!("row key {lo}"),
                        message: format!("more than {page} items share it"),
                    });
                }
                let mid = lo + (hi - lo) / 2;
                todo.push((mid, hi));
                todo.push((lo, mid));
                continue;
            }
            f(found)?;
        }
        Ok(())
    }
}

/// Rows of an items query, sorted by id (vectors empty when not asked for).
pub(super) fn rows(
    cols: &[(String, Column)],
) -> Result<BTreeMap<String, (ItemRecord, Vec<f32>)>, StoreError> {
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
