//! The write path: items added (checked and embedded before anything is written, then
//! one transaction) and removed while searches go on; each write publishes the next
//! snapshot of the index.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::Engine;
use crate::error::{Error, Result};
use crate::index::{Item, VectorIndex};
use crate::preprocess;
use crate::store::{Change, ItemRecord, StoreError};

/// Longest item id accepted from `add` or the API.
pub const MAX_ID_LEN: usize = 200;

/// Folder inside the index that keeps the photos of items added by `add` or the API.
pub const ADDED_PHOTOS_DIR: &str = "photos";

/// An item to add: its id, its photo's bytes and its metadata (known columns only).
#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: String,
    pub photo: Vec<u8>,
    pub metadata: BTreeMap<String, String>,
}

impl NewItem {
    /// Items from photo files, as `lookalike add` names them: each id is the file's stem
    /// (or `id`, for one photo), its metadata its row in `csv` (if any) with `set`'s
    /// `column=value` pairs over it. Every file is read before anything is written.
    pub fn from_files(
        photos: &[std::path::PathBuf],
        id: Option<&str>,
        csv: Option<&crate::catalog::Metadata>,
        set: &[String],
    ) -> Result<Vec<Self>> {
        if id.is_some() && photos.len() != 1 {
            return Err(Error::BadParameter {
                name: "id",
                message: "--id names one item: give exactly one photo".into(),
            });
        }
        let mut fixed = BTreeMap::new();
        for s in set {
            let (col, val) =
                s.split_once('=').ok_or_else(|| Error::BadFilter(format!("--set {s}")))?;
            fixed.insert(col.trim().to_string(), val.trim().to_string());
        }
        let mut items = Vec::with_capacity(photos.len());
        for path in photos {
            let item_id = match id {
                Some(i) => i.to_string(),
                None => {
                    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
                }
            };
            let photo = crate::catalog::read_photo(path).map_err(|source| Error::Unreadable {
                what: "the photo",
                path: path.clone(),
                source,
            })?;
            let mut metadata = csv.and_then(|m| m.rows.get(&item_id).cloned()).unwrap_or_default();
            metadata.extend(fixed.clone());
            items.push(NewItem { id: item_id, photo, metadata });
        }
        Ok(items)
    }
}

/// What a write did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WriteReport {
    /// Ids new to the index.
    pub added: Vec<String>,
    /// Ids that were there and now hold the new photo and metadata.
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
    /// Items in the index after the write.
    pub total_items: usize,
    pub seconds: f64,
}

impl Engine {
    /// Add (or replace) items with their photos, visible to searches once this returns.
    /// Every photo is checked and embedded before anything is written; the write itself
    /// is one transaction. Time goes in proportion to the items given, not to the index.
    pub fn add_items(&self, mut items: Vec<NewItem>) -> Result<WriteReport> {
        let started = Instant::now();
        self.check_writable()?;
        for item in &mut items {
            item.id = canonical_id(&item.id);
        }
        let mut seen = std::collections::HashSet::new();
        for item in &items {
            check_id(&item.id)?;
            if !seen.insert(item.id.as_str()) {
                return Err(bad_item(&item.id, "given twice"));
            }
            if let Some(col) = item.metadata.keys().find(|c| !self.info.columns.contains(c)) {
                return Err(Error::UnknownColumn {
                    column: col.clone(),
                    known: self.info.columns.join(", "),
                });
            }
        }
        // Decode and embed first: a bad photo refuses the whole batch before any write.
        let tensors: Vec<Vec<f32>> = items
            .par_iter()
            .map(|item| {
                let img = preprocess::decode(&item.photo)
                    .map_err(|e| bad_item(&item.id, &e.to_string()))?;
                preprocess::tensor(&img, self.embedder.spec(), None)
                    .map_err(|e| bad_item(&item.id, &e.to_string()))
            })
            .collect::<Result<_>>()?;
        let mut vectors = Vec::with_capacity(items.len() * self.info.dim);
        for chunk in tensors.chunks(32) {
            let flat: Vec<f32> = chunk.concat();
            vectors.extend(self.embedder.embed_tensors(&flat, chunk.len())?);
        }
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        // Photo files are written under the writer lock: a concurrent write or removal of
        // the same id cannot delete a file between its writing and its commit.
        self.sweep_orphans_once();
        let mut changes = Vec::with_capacity(items.len());
        let mut written = Vec::with_capacity(items.len());
        // Without a snapshot (the store answers reads) there is none to build on.
        let before = match self.in_store() {
            Some(_) => None,
            None => Some(self.current_for_write()?),
        };
        let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
        let known = self.known(before.as_deref(), &ids)?;
        let existing: std::collections::HashSet<&str> =
            known.values().map(|(_, r)| r.path.as_str()).collect();
        for (item, vector) in items.iter().zip(vectors.chunks_exact(self.info.dim)) {
            let hash = blake3::hash(&item.photo).to_hex().to_string();
            let ext = image::guess_format(&item.photo)
                .ok()
                .and_then(|f| f.extensions_str().first().copied())
                .unwrap_or("img");
            let rel = photo_name(&item.id, &hash, ext);
            if let Err(e) = self.store.write_file(&rel, &item.photo) {
                self.remove_files(&written);
                return Err(e.into());
            }
            // A replaced item's file of the same name is the one just written: not new.
            if !existing.contains(rel.as_str()) {
                written.push(rel.clone());
            }
            let record = ItemRecord {
                path: rel,
                hash,
                metadata: item.metadata.clone(),
                key: None,
                added: true,
                cell: None,
            };
            changes.push(Change::Put { id: item.id.clone(), record, vector: vector.to_vec() });
        }
        // Place each item in its partition cell: one comparison with the centroids each.
        if let Some(p) = before.as_ref().and_then(|b| b.partition()) {
            for (change, cell) in changes.iter_mut().zip(p.assign(&vectors)) {
                if let Change::Put { record, .. } = change {
                    record.cell = Some(cell);
                }
            }
        }
        let mut report = WriteReport::default();
        let mut old_keys = Vec::new();
        let mut old_files = Vec::new();
        for item in &items {
            match known.get(&item.id) {
                Some((key, r)) => {
                    old_keys.extend(*key);
                    if r.added {
                        old_files.push(r.path.clone());
                    }
                    report.replaced.push(item.id.clone());
                }
                None => report.added.push(item.id.clone()),
            }
        }
        let version = before.as_ref().map(|b| b.version());
        let keys = match self.store.apply(None, &changes) {
            Ok(keys) => keys,
            Err(e) => {
                // Nothing refers to the new files: take them back.
                self.remove_files(&written);
                return Err(e.into());
            }
        };
        let new_items: Vec<Item> = changes
            .into_iter()
            .zip(keys)
            .filter_map(|(c, key)| match c {
                Change::Put { id, record, vector } => {
                    Some(Item { key, id, record: ItemRecord { key: Some(key), ..record }, vector })
                }
                _ => None,
            })
            .collect();
        let kept: std::collections::HashSet<&str> =
            new_items.iter().map(|i| i.record.path.as_str()).collect();
        let old_files: Vec<String> =
            old_files.into_iter().filter(|p| !kept.contains(p.as_str())).collect();
        match (before, version) {
            (Some(before), Some(version)) => {
                let next =
                    before.with_changes(new_items, &old_keys).at_version(self.after(version)?);
                report.total_items = next.len();
                self.index.store(Arc::new(next));
            }
            _ => {
                self.census.invalidate();
                report.total_items = self.len()?;
            }
        }
        self.remove_files(&old_files);
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Remove items by id, gone from searches once this returns. An unknown id refuses the
    /// whole batch.
    pub fn remove_items(&self, ids: &[String]) -> Result<WriteReport> {
        let started = Instant::now();
        self.check_writable()?;
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        let before = match self.in_store() {
            Some(_) => None,
            None => Some(self.current_for_write()?),
        };
        let mut keys = Vec::with_capacity(ids.len());
        let mut files = Vec::new();
        // The ids as stored: one given decomposed names the item stored in NFC.
        let mut stored = Vec::with_capacity(ids.len());
        for id in ids {
            let (stored_id, key, record) = match &before {
                Some(b) => {
                    let key = b.key_of(id).ok_or_else(|| Error::UnknownId(id.clone()))?;
                    let record = b.record(key).cloned().unwrap_or_default();
                    (b.id(key).unwrap_or(id).to_string(), Some(key), record)
                }
                None => {
                    let (stored_id, record, _) =
                        self.item(id)?.ok_or_else(|| Error::UnknownId(id.clone()))?;
                    (stored_id, None, record)
                }
            };
            if record.added {
                files.push(record.path.clone());
            }
            keys.extend(key);
            stored.push(stored_id);
        }
        let ids = stored;
        let changes: Vec<Change> = ids.iter().map(|id| Change::Delete { id: id.clone() }).collect();
        self.store.apply(None, &changes)?;
        let total_items = match before {
            Some(before) => {
                let next = before
                    .with_changes(Vec::new(), &keys)
                    .at_version(self.after(before.version())?);
                let total = next.len();
                self.index.store(Arc::new(next));
                total
            }
            None => {
                self.census.invalidate();
                self.len()?
            }
        };
        let report = WriteReport {
            removed: ids.to_vec(),
            total_items,
            seconds: started.elapsed().as_secs_f64(),
            ..Default::default()
        };
        self.remove_files(&files);
        Ok(report)
    }

    /// The records (with snapshot keys, when there is a snapshot) of those of `ids` the
    /// index holds: from `before`, or from the store when there is no snapshot.
    fn known(
        &self,
        before: Option<&VectorIndex>,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, (Option<u32>, ItemRecord)>> {
        Ok(match (before, self.in_store()) {
            (Some(b), _) => ids
                .iter()
                .filter_map(|id| {
                    let key = b.key_of(id)?;
                    Some((id.clone(), (Some(key), b.record(key)?.clone())))
                })
                .collect(),
            (None, Some(reads)) => {
                reads.items(ids)?.into_iter().map(|(id, (r, _))| (id, (None, r))).collect()
            }
            (None, None) => Default::default(),
        })
    }

    /// Catch up with writes made through other processes on the same index (another
    /// server, `lookalike add`, `remove`, `index`, `repartition`): when the store holds
    /// batches the current snapshot lacks, load it again and publish that. Returns whether
    /// it did. Cheap when nothing changed (one read of the store's version), so a server
    /// calls it every second; searches go on with the old snapshot while it loads.
    pub fn follow(&self) -> Result<bool> {
        if self.in_store {
            // Nothing held to catch up: every read asks the store.
            return Ok(false);
        }
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        let before = self.index();
        Ok(!Arc::ptr_eq(&before, &self.current_for_write()?))
    }

    /// The snapshot a write builds on (the caller holds the writer lock): reloaded first
    /// when the store has moved on without it (another process wrote, or replaced the
    /// partition: new items must be placed in the stored partition's cells).
    fn current_for_write(&self) -> Result<Arc<VectorIndex>> {
        let current = self.index();
        if self.store.version()? == current.version()
            && self.store.partition_generation()? == current.generation()
        {
            return Ok(current);
        }
        tracing::info!("the index changed on disk; reloading it");
        let fresh = Arc::new(
            VectorIndex::load(self.store.as_ref(), self.info.dim)?.searched_by(self.store.clone()),
        );
        self.index.store(fresh.clone());
        Ok(fresh)
    }

    /// The version a snapshot holds after this process committed one batch on top of
    /// `before`: the store's, when that batch was the only one since; otherwise `before`,
    /// so that the next [`Engine::follow`] loads what the other writer added.
    fn after(&self, before: u64) -> Result<u64> {
        let now = self.store.version()?;
        Ok(if now == before + 1 { now } else { before })
    }

    fn check_writable(&self) -> Result<()> {
        // v1 items have no keys; v2 and later take writes (a v2 index just has no partition).
        if self.info.format_version < 2 {
            return Err(Error::BadParameter {
                name: "index",
                message: format!(
                    "{} is in format v{}; run `lookalike index` on it once to upgrade it before adding or removing items",
                    self.location, self.info.format_version
                ),
            });
        }
        Ok(())
    }

    /// Photos of removed or replaced added items; a leftover file only wastes space.
    fn remove_files(&self, rels: &[String]) {
        for rel in rels {
            if let Err(e) = self.store.remove_file(rel) {
                tracing::warn!("cannot remove {rel}: {}", crate::error::Chain(&e));
            }
        }
    }
}

pub(super) fn poisoned() -> Error {
    Error::Store(StoreError::Backend("a writer panicked; reopen the index".into()))
}

fn bad_item(id: &str, message: &str) -> Error {
    Error::BadItem { id: id.to_string(), message: message.to_string() }
}

/// An id as items are stored by: in Unicode's composed form (NFC), so that `café`
/// typed precomposed or decomposed names one item.
pub fn canonical_id(id: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    id.nfc().collect()
}

/// Ids become file names and URL segments: printable, no path separators, not too long.
fn check_id(id: &str) -> Result<()> {
    let problem = if id.trim().is_empty() {
        Some("the id is empty")
    } else if id.len() > MAX_ID_LEN {
        Some("the id is longer than 200 bytes")
    } else if id.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        Some("the id holds a control character or a slash")
    } else if id == "." || id == ".." {
        // A URL's dot segments are dropped by clients: /api/items/.. is never reached.
        Some("the id is '.' or '..', which a URL cannot name")
    } else if id.chars().any(invisible) {
        Some("the id holds an invisible or text-direction character")
    } else {
        None
    };
    match problem {
        Some(p) => Err(bad_item(id, p)),
        None => Ok(()),
    }
}

/// Characters that show nothing or reorder the text around them (Unicode's format
/// characters): two ids that look the same would name different items, and a
/// right-to-left override makes an id read as another.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect()
}

/// The file of an added item's photo: its id made file-safe, a hash of the id (two ids
/// that read the same once made safe, `a/b` and `a_b`, never share a file), a hash of the
/// photo.
fn photo_name(id: &str, photo_hash: &str, ext: &str) -> String {
    let id_hash = blake3::hash(id.as_bytes()).to_hex();
    format!("{ADDED_PHOTOS_DIR}/{}-{}-{}.{ext}", file_safe(id), &id_hash[..8], &photo_hash[..16])
}

/// Orphans younger than this are left alone: another process may be between writing
/// a photo and committing its record.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(600);

impl Engine {
    /// Once per opened engine: remove files of `photos/` that no record names and that
    /// are older than [`ORPHAN_AGE`] (left by a write killed before its commit, or
    /// temporary files of one killed while writing).
    fn sweep_orphans_once(&self) {
        if self.swept.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let Ok(records) = self.store.records() else { return };
        let named: std::collections::HashSet<String> =
            records.into_iter().filter(|(_, r)| r.added).map(|(_, r)| r.path).collect();
        let files = match self.store.list_files(ADDED_PHOTOS_DIR) {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!("cannot look for orphaned photos: {}", crate::error::Chain(&e));
                return;
            }
        };
        for file in files {
            let old = file.age.is_some_and(|age| age >= ORPHAN_AGE);
            if old && !named.contains(&file.name) {
                tracing::info!("removing {}: no item refers to it", file.name);
                if let Err(e) = self.store.remove_file(&file.name) {
                    tracing::warn!("cannot remove {}: {}", file.name, crate::error::Chain(&e));
                }
            }
        }
    }
}
