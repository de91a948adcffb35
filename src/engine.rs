//! An opened index ready to answer queries: store, model and in-memory vectors together.
//!
//! This is what the CLI's `search`, the server and the evaluator hold. Queries are
//! photos (bytes), ids of indexed items, or raw vectors.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::embed::{BackendKind, Embedder};
use crate::error::{Error, Result};
use crate::index::{Filter, Hit, VectorIndex};
use crate::ingest::MODEL_FILE;
use crate::model::ResolvedModel;
use crate::preprocess::{self, Crop, QueryResize};
use crate::store::{IndexInfo, LmdbStore, Store, StoreError};

/// Largest k a query may ask for.
pub const MAX_K: usize = 1000;

/// A query's options.
#[derive(Debug, Clone)]
pub struct Query {
    pub k: usize,
    pub filter: Filter,
    pub crop: Option<Crop>,
    /// How a query photo is squared (the catalogue is always padded).
    pub resize: QueryResize,
}

impl Default for Query {
    fn default() -> Self {
        Self { k: 5, filter: Filter::default(), crop: None, resize: QueryResize::Auto }
    }
}

/// Time spent answering a photo query, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timing {
    pub decode_ms: f64,
    pub embed_ms: f64,
    pub search_ms: f64,
}

/// An index opened for searching.
pub struct Engine {
    dir: PathBuf,
    info: IndexInfo,
    store: LmdbStore,
    embedder: Embedder,
    index: VectorIndex,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("dir", &self.dir).field("items", &self.index.len()).finish()
    }
}

/// Open an index folder's description without loading a model (for `info`).
pub fn read_info(dir: &Path) -> Result<(IndexInfo, usize)> {
    let store = LmdbStore::open_existing(dir)?;
    let info = store.info()?.ok_or_else(|| StoreError::NotAnIndex(dir.display().to_string()))?;
    Ok((info, store.len()?))
}

impl Engine {
    /// Open the index in `dir` with its own model copy.
    pub fn open(dir: &Path, backend: BackendKind) -> Result<Self> {
        let store = LmdbStore::open_existing(dir)?;
        let info =
            store.info()?.ok_or_else(|| StoreError::NotAnIndex(dir.display().to_string()))?;
        let model = ResolvedModel { spec: info.model.clone(), path: dir.join(MODEL_FILE) };
        let embedder = Embedder::new(&model, backend)?;
        let index = VectorIndex::load(&store, info.dim)?;
        Ok(Self { dir: dir.to_path_buf(), info, store, embedder, index })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn info(&self) -> &IndexInfo {
        &self.info
    }

    pub fn index(&self) -> &VectorIndex {
        &self.index
    }

    pub fn store(&self) -> &LmdbStore {
        &self.store
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Parse `column=value` filters against this index's columns.
    pub fn filter<S: AsRef<str>>(&self, specs: &[S]) -> Result<Filter> {
        Filter::parse(specs, &self.info.columns)
    }

    fn check_k(k: usize) -> Result<()> {
        if k == 0 || k > MAX_K {
            return Err(Error::BadParameter {
                name: "k",
                message: format!("{k} is not in 1..={MAX_K}"),
            });
        }
        Ok(())
    }

    /// Embed a photo given as file bytes.
    pub fn embed_photo(
        &self,
        bytes: &[u8],
        crop: Option<Crop>,
        resize: QueryResize,
    ) -> Result<(Vec<f32>, Timing)> {
        let t0 = Instant::now();
        let img = preprocess::decode(bytes)?;
        let tensor = self.query_tensor(&img, crop, resize)?;
        let t1 = Instant::now();
        let v = self.embedder.embed_tensors(&tensor, 1)?;
        let t2 = Instant::now();
        let timing = Timing {
            decode_ms: (t1 - t0).as_secs_f64() * 1e3,
            embed_ms: (t2 - t1).as_secs_f64() * 1e3,
            search_ms: 0.0,
        };
        Ok((v, timing))
    }

    /// The model input for a decoded query photo.
    pub fn query_tensor(
        &self,
        img: &image::RgbImage,
        crop: Option<Crop>,
        resize: QueryResize,
    ) -> Result<Vec<f32>> {
        let cropped;
        let src = match crop {
            Some(c) => {
                cropped = preprocess::apply_crop(img, c)?;
                &cropped
            }
            None => img,
        };
        let mode = resize.resolve(src);
        Ok(preprocess::tensor_as(src, self.embedder.spec(), None, mode)?)
    }

    /// Embed many photo files in batches; one result per file, failures as messages.
    pub fn embed_files(
        &self,
        files: &[std::path::PathBuf],
        resize: QueryResize,
    ) -> Vec<std::result::Result<Vec<f32>, String>> {
        use rayon::prelude::*;
        let dim = self.info.dim;
        let mut out = Vec::with_capacity(files.len());
        for chunk in files.chunks(32) {
            let tensors: Vec<std::result::Result<Vec<f32>, String>> = chunk
                .par_iter()
                .map(|f| {
                    let bytes = std::fs::read(f).map_err(|e| format!("cannot read: {e}"))?;
                    let img = preprocess::decode(&bytes).map_err(|e| e.to_string())?;
                    self.query_tensor(&img, None, resize).map_err(|e| e.to_string())
                })
                .collect();
            let ok: Vec<f32> =
                tensors.iter().filter_map(|t| t.as_ref().ok()).flatten().copied().collect();
            let n_ok = tensors.iter().filter(|t| t.is_ok()).count();
            match self.embedder.embed_tensors(&ok, n_ok) {
                Ok(vectors) => {
                    let mut it = vectors.chunks_exact(dim);
                    for t in tensors {
                        out.push(t.and_then(|_| {
                            it.next().map(<[f32]>::to_vec).ok_or_else(|| "missing vector".into())
                        }));
                    }
                }
                Err(e) => out.extend(tensors.into_iter().map(|_| Err(e.to_string()))),
            }
        }
        out
    }

    /// Search with a photo.
    pub fn search_photo(&self, bytes: &[u8], q: &Query) -> Result<(Vec<Hit>, Timing)> {
        Self::check_k(q.k)?;
        let (v, mut timing) = self.embed_photo(bytes, q.crop, q.resize)?;
        let t = Instant::now();
        let hits = self.index.search(&v, q.k, &q.filter, None)?;
        timing.search_ms = t.elapsed().as_secs_f64() * 1e3;
        Ok((hits, timing))
    }

    /// Items most similar to an indexed item, the item itself left out.
    pub fn similar_to(&self, id: &str, q: &Query) -> Result<Vec<Hit>> {
        Self::check_k(q.k)?;
        let row = self.index.row_of(id).ok_or_else(|| Error::UnknownId(id.to_string()))?;
        self.index.search(self.index.vector(row), q.k, &q.filter, Some(row))
    }

    /// Search with a ready vector.
    pub fn search_vector(&self, v: &[f32], q: &Query) -> Result<Vec<Hit>> {
        Self::check_k(q.k)?;
        self.index.search(v, q.k, &q.filter, None)
    }
}
