//! Files an index keeps beside its items (its trained projection, added photos) in the
//! meta collection: base64 chunk rows under a head row that names them, so that a reader
//! sees the old file or the new one, never a mix.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{IDS_PER_CALL, MilvusStore, backend, filler, nonce, strings, text};
use crate::store::{KeptFile, StoreError, check_file_name, directly_in};

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
    /// When it was written (seconds since 1970; 0 in heads written before this was kept),
    /// so that an orphan sweep leaves a file alone while its item's commit may be coming.
    #[serde(default)]
    written: u64,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The meta keys of a file: its head, and the prefix of its chunks (keys are at most 64
/// characters, names up to 1,024 bytes, so both go by a hash of the name).
fn file_head_key(name: &str) -> String {
    format!("file/{}", &blake3::hash(name.as_bytes()).to_hex()[..32])
}

fn file_chunk_key(name: &str, nonce: &str, i: usize) -> String {
    format!("chunk/{}/{nonce}/{i:06}", &blake3::hash(name.as_bytes()).to_hex()[..16])
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

    pub(super) fn read_kept(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
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

    pub(super) fn write_kept(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        use base64::Engine as _;
        check_file_name(name)?;
        let dim =
            self.stored_dim()?.ok_or_else(|| StoreError::NotAnIndex(self.address.to_string()))?;
        let old = self.file_head(name)?;
        let head = FileHead {
            name: name.into(),
            size: bytes.len(),
            hash: blake3::hash(bytes).to_hex().to_string(),
            chunks: bytes.len().div_ceil(FILE_CHUNK),
            nonce: nonce(name),
            written: unix_now(),
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

    pub(super) fn list_kept(&self, dir: &str) -> Result<Vec<KeptFile>, StoreError> {
        check_file_name(dir)?;
        if !self.exists().map_err(backend)? {
            return Ok(Vec::new());
        }
        // Heads are keyed by a hash of the name: read them all and keep those under `dir`.
        let (client, meta) = (self.client.clone(), self.meta());
        let cols = self
            .run(async move { client.query(&meta, r#"key like "file/%""#, &["value"], None).await })
            .map_err(backend)?;
        let now = unix_now();
        let mut files = Vec::new();
        for value in strings(&cols, "value") {
            let head: FileHead = serde_json::from_str(&value).map_err(|e| StoreError::Corrupt {
                id: "file description".into(),
                message: e.to_string(),
            })?;
            if directly_in(dir, &head.name) {
                let age = std::time::Duration::from_secs(now.saturating_sub(head.written));
                files.push(KeptFile { name: head.name, age: Some(age) });
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// Sets a kept file's time of writing (as a file written long ago, or by a version
    /// that did not record it: 0).
    #[cfg(test)]
    pub(super) fn backdate_kept(&self, name: &str, written: u64) {
        let mut head = self.file_head(name).unwrap().unwrap();
        head.written = written;
        let dim = self.stored_dim().unwrap().unwrap();
        let text = text(name, "file description", &head).unwrap();
        self.put_meta(dim, vec![(file_head_key(name), text, filler(dim))]).unwrap();
    }

    pub(super) fn remove_kept(&self, name: &str) -> Result<(), StoreError> {
        check_file_name(name)?;
        let Some(head) = self.file_head(name)? else { return Ok(()) };
        self.delete_meta(vec![file_head_key(name)])?;
        self.delete_meta((0..head.chunks).map(|i| file_chunk_key(name, &head.nonce, i)).collect())
    }
}
