//! In-memory store: the reference behaviour of [`Store`], for tests and scratch indexes.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::reads::{Found, ItemReads, passes};
use super::{
    Change, IndexInfo, ItemRecord, KeptFile, Store, StoreError, check_dims, check_file_name,
    directly_in,
};

#[derive(Default)]
struct Inner {
    info: Option<IndexInfo>,
    items: BTreeMap<String, (ItemRecord, Vec<f32>)>,
    next_key: u32,
    centroids: Option<Vec<f32>>,
    generation: u64,
    version: u64,
    /// Each kept file with when it was written.
    files: BTreeMap<String, (Vec<u8>, std::time::Instant)>,
}

/// A [`Store`] that lives and dies with the process.
#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Backend("memory store lock poisoned".into())
}

impl Store for MemoryStore {
    fn info(&self) -> Result<Option<IndexInfo>, StoreError> {
        Ok(self.inner.read().map_err(poisoned)?.info.clone())
    }

    fn apply(&self, info: Option<&IndexInfo>, changes: &[Change]) -> Result<Vec<u32>, StoreError> {
        let mut g = self.inner.write().map_err(poisoned)?;
        let effective = info.cloned().or_else(|| g.info.clone());
        check_dims(effective.as_ref(), changes)?;
        // Validate first, then mutate: all or nothing.
        for c in changes {
            if let Change::Record { id, .. } = c
                && !g.items.contains_key(id)
                && !changes.iter().any(|o| matches!(o, Change::Put { id: i, .. } if i == id))
            {
                return Err(StoreError::Corrupt {
                    id: id.clone(),
                    message: "record update for a missing item".into(),
                });
            }
        }
        if let Some(i) = info {
            g.info = Some(i.clone());
        }
        let mut keys = Vec::new();
        for c in changes {
            match c {
                Change::Put { id, record, vector } => {
                    let key = g.next_key;
                    g.next_key += 1;
                    let record = ItemRecord { key: Some(key), ..record.clone() };
                    g.items.insert(id.clone(), (record, vector.clone()));
                    keys.push(key);
                }
                Change::Record { id, record } => {
                    if let Some(entry) = g.items.get_mut(id) {
                        entry.0 = ItemRecord { key: entry.0.key, ..record.clone() };
                    }
                }
                Change::Delete { id } => {
                    g.items.remove(id);
                }
                Change::Centroids(c) => {
                    g.centroids = (!c.is_empty()).then(|| c.clone());
                    g.generation += 1;
                }
            }
        }
        if !changes.is_empty() {
            g.version += 1;
        }
        Ok(keys)
    }

    fn get(&self, id: &str) -> Result<Option<(ItemRecord, Vec<f32>)>, StoreError> {
        Ok(self.inner.read().map_err(poisoned)?.items.get(id).cloned())
    }

    fn centroids(&self) -> Result<Option<Vec<f32>>, StoreError> {
        Ok(self.inner.read().map_err(poisoned)?.centroids.clone())
    }

    fn partition_generation(&self) -> Result<u64, StoreError> {
        Ok(self.inner.read().map_err(poisoned)?.generation)
    }

    fn version(&self) -> Result<u64, StoreError> {
        Ok(self.inner.read().map_err(poisoned)?.version)
    }

    fn len(&self) -> Result<usize, StoreError> {
        Ok(self.inner.read().map_err(poisoned)?.items.len())
    }

    fn records(&self) -> Result<Vec<(String, ItemRecord)>, StoreError> {
        let g = self.inner.read().map_err(poisoned)?;
        Ok(g.items.iter().map(|(k, (r, _))| (k.clone(), r.clone())).collect())
    }

    fn for_each(&self, f: &mut dyn FnMut(&str, &ItemRecord, &[f32])) -> Result<(), StoreError> {
        let g = self.inner.read().map_err(poisoned)?;
        for (k, (r, v)) in &g.items {
            f(k, r, v);
        }
        Ok(())
    }

    fn reads(&self) -> Option<&dyn ItemReads> {
        Some(self)
    }

    fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_file_name(name)?;
        Ok(self.inner.read().map_err(poisoned)?.files.get(name).map(|(b, _)| b.clone()))
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_file_name(name)?;
        self.inner
            .write()
            .map_err(poisoned)?
            .files
            .insert(name.to_string(), (bytes.to_vec(), std::time::Instant::now()));
        Ok(())
    }

    fn remove_file(&self, name: &str) -> Result<(), StoreError> {
        check_file_name(name)?;
        self.inner.write().map_err(poisoned)?.files.remove(name);
        Ok(())
    }

    fn list_files(&self, dir: &str) -> Result<Vec<KeptFile>, StoreError> {
        check_file_name(dir)?;
        let g = self.inner.read().map_err(poisoned)?;
        Ok(g.files
            .iter()
            .filter(|(name, _)| directly_in(dir, name))
            .map(|(name, (_, at))| KeptFile { name: name.clone(), age: Some(at.elapsed()) })
            .collect())
    }
}

/// The reference of the reads a query server without a snapshot makes: exact search.
impl ItemReads for MemoryStore {
    fn nearest_items(
        &self,
        query: &[f32],
        k: usize,
        conditions: &[(String, Vec<String>)],
        exclude: Option<&str>,
    ) -> Result<Vec<Found>, StoreError> {
        let g = self.inner.read().map_err(poisoned)?;
        let mut found: Vec<Found> = g
            .items
            .iter()
            .filter(|(id, (r, _))| Some(id.as_str()) != exclude && passes(&r.metadata, conditions))
            .map(|(id, (r, v))| Found {
                id: id.clone(),
                score: crate::kernel::dot(query, v),
                record: ItemRecord { key: None, ..r.clone() },
                vector: v.clone(),
            })
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        found.truncate(k);
        Ok(found)
    }

    fn items(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, (ItemRecord, Vec<f32>)>, StoreError> {
        let g = self.inner.read().map_err(poisoned)?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let (r, v) = g.items.get(id)?;
                Some((id.clone(), (ItemRecord { key: None, ..r.clone() }, v.clone())))
            })
            .collect())
    }

    fn count(&self, conditions: &[(String, Vec<String>)]) -> Result<usize, StoreError> {
        let g = self.inner.read().map_err(poisoned)?;
        Ok(g.items.values().filter(|(r, _)| passes(&r.metadata, conditions)).count())
    }

    fn page(
        &self,
        conditions: &[(String, Vec<String>)],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, ItemRecord)>, StoreError> {
        let g = self.inner.read().map_err(poisoned)?;
        Ok(g.items
            .iter()
            .filter(|(_, (r, _))| passes(&r.metadata, conditions))
            .skip(offset)
            .take(limit)
            .map(|(id, (r, _))| (id.clone(), ItemRecord { key: None, ..r.clone() }))
            .collect())
    }

    fn scan_records(&self, f: &mut dyn FnMut(&str, &ItemRecord)) -> Result<(), StoreError> {
        let g = self.inner.read().map_err(poisoned)?;
        for (id, (r, _)) in &g.items {
            f(id, r);
        }
        Ok(())
    }
}
