//! A learned projection of the model's embeddings: a small network trained on the
//! catalogue's own labels (`lookalike train`), kept in the index folder beside the model,
//! that re-ranks a search's best candidates with a similarity that knows the labels
//! ("trained" search).
//!
//! The model's embedding says "a shoe"; the projection, trained with a normalised-softmax
//! loss on e.g. `articleType`, pulls items of one article type together. It re-ranks
//! rather than replaces: a search takes its best [`RERANK_DEPTH`] candidates by the
//! stored vectors (colour included, through the partition), then orders them by
//! `(1 − mix) · stored score + mix · projected cosine`. So it needs no second index, works
//! with live writes and filters, and keeps some of what the labels do not teach (colour,
//! shopper photos; the measurements are in BENCHMARKS.md, "Fashion quality").

pub mod train;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

/// The projection's file inside an index folder.
pub const PROJECTION_FILE: &str = "projection.bin";

/// How many of the stored vectors' best candidates a trained search re-orders (at least k).
pub const RERANK_DEPTH: usize = 100;

/// Share of the projected cosine in a trained search's score unless the query says.
pub const DEFAULT_MIX: f32 = 0.4;

/// Colour weight of a trained search's query unless the query says (the index's stored
/// weight is what an untrained search uses).
pub const TRAINED_COLOUR: f32 = 1.0;

/// Whether snapshots (shopper photos, squared by cropping) are re-ordered by default.
pub const SNAPSHOTS_TRAINED: bool = false;

const MAGIC: &[u8; 8] = b"LKPROJ\0\0";

/// The file format this build writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;

/// What can go wrong with a projection: reading, checking or training it.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("no trained projection in {index} (run `lookalike train --index {index}` first)")]
    Missing { index: String },
    #[error("{}: not a lookalike projection file", .path.display())]
    NotAProjection { path: PathBuf },
    #[error(
        "{}: projection format {found} is newer than this lookalike reads ({supported}); upgrade lookalike",
        .path.display()
    )]
    UnsupportedVersion { path: PathBuf, found: u32, supported: u32 },
    #[error("{}: the projection file is damaged ({message}); train it again", .path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("the projection takes {expected}-d embeddings but this index's model gives {got}-d")]
    DimensionMismatch { expected: usize, got: usize },
    #[error("the projection was trained for another model (retrain it for this index)")]
    ModelMismatch,
    #[error("cannot train: {0}")]
    NotEnoughData(String),
    #[error("invalid training parameter {name}: {message}")]
    BadParameter { name: &'static str, message: String },
    #[error("cannot read the trained projection: {message}")]
    Unreadable { message: String },
}

/// What a projection is and how it was made; stored as JSON in the file's header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProjectionMeta {
    /// The label it was trained on (columns joined with `+`).
    pub label: String,
    /// The label's values, in the order of the class proxies.
    pub classes: Vec<String>,
    /// The model's embedding width (the projection reads only that part of a stored
    /// vector, never the colour histogram).
    pub input_dim: usize,
    /// Width of each layer, input excluded (the last is the projected dimension).
    pub layers: Vec<usize>,
    /// The index model's hash: a projection belongs to the embeddings it was trained on.
    pub model_hash: String,
    /// Whether the held-out split (`eval::in_holdout`) was left out of training, so that
    /// `eval --holdout --trained` measures items training never saw.
    pub holdout_excluded: bool,
    pub items: usize,
    pub config: train::TrainConfig,
    /// Mean loss and accuracy (nearest class proxy) over the last epoch's batches.
    pub final_loss: f32,
    pub final_accuracy: f32,
    pub seconds: f64,
}

/// One fully connected layer, `out × in` weights and `out` biases.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dense {
    pub(crate) w: Array2<f32>,
    pub(crate) b: Array1<f32>,
}

/// A trained projection: centring, dense layers with ReLU between them, unit output; and
/// the class proxies it was trained against.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    meta: ProjectionMeta,
    pub(crate) mean: Array1<f32>,
    pub(crate) layers: Vec<Dense>,
    pub(crate) proxies: Array2<f32>,
}

/// The network's input for stored-form vectors: the model's part alone (a stored vector
/// may carry the colour histogram after it), unit length, centred on the training mean
/// and scaled to unit variance per component on average, so that the usual weight
/// initialisation suits it.
pub(crate) fn input_rows(vectors: &[&[f32]], input_dim: usize, mean: &Array1<f32>) -> Array2<f32> {
    let scale = (input_dim as f32).sqrt();
    let mut x = Array2::zeros((vectors.len(), input_dim));
    for (mut row, v) in x.rows_mut().into_iter().zip(vectors) {
        let part = &v[..input_dim.min(v.len())];
        let norm = crate::kernel::dot(part, part).sqrt();
        let inv = if norm > 0.0 && norm.is_finite() { 1.0 / norm } else { 0.0 };
        for ((o, a), m) in row.iter_mut().zip(part).zip(mean.iter()) {
            *o = (a * inv - m) * scale;
        }
    }
    x
}

/// Rows scaled to unit length in place (a zero row stays zero); returns the norms.
pub(crate) fn normalise_rows(z: &mut Array2<f32>) -> Vec<f32> {
    z.rows_mut()
        .into_iter()
        .map(|mut row| {
            let norm = row.dot(&row).sqrt();
            if norm > 0.0 && norm.is_finite() {
                row.mapv_inplace(|a| a / norm);
            }
            norm
        })
        .collect()
}

/// Most projected vectors a [`ProjectedCache`] holds (1 kB each at 256 dimensions);
/// past it the cache starts afresh.
pub const CACHE_LIMIT: usize = 200_000;

/// Projected vectors of an index's items, by key. A key names one vector for ever (a
/// replaced item gets a new key), so an entry never goes stale; one cache belongs to one
/// projection.
#[derive(Debug, Default)]
pub struct ProjectedCache {
    map: RwLock<HashMap<u32, Arc<[f32]>>>,
}

impl ProjectedCache {
    pub fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The score of a trained search: the stored vectors' cosine and the projected one.
pub fn blend(stored: f32, projected: f32, mix: f32) -> f32 {
    (1.0 - mix) * stored + mix * projected
}

/// A projection with its share of a query's score.
pub type Trained<'a> = (&'a Projection, f32);

/// Check a query's projection share.
pub fn check_mix(mix: f32) -> Result<(), ProjectionError> {
    if (0.0..=1.0).contains(&mix) {
        Ok(())
    } else {
        Err(ProjectionError::BadParameter {
            name: "mix",
            message: format!("{mix} is not in 0..=1"),
        })
    }
}

impl Projection {
    pub fn meta(&self) -> &ProjectionMeta {
        &self.meta
    }

    /// Width of the projected vectors.
    pub fn output_dim(&self) -> usize {
        self.layers.last().map_or(0, |l| l.w.nrows())
    }

    /// Refuse an index whose model differs from the one this was trained on.
    pub fn check_model(&self, dim: usize, model_hash: &str) -> Result<(), ProjectionError> {
        if dim != self.meta.input_dim {
            return Err(ProjectionError::DimensionMismatch {
                expected: self.meta.input_dim,
                got: dim,
            });
        }
        if model_hash != self.meta.model_hash {
            return Err(ProjectionError::ModelMismatch);
        }
        Ok(())
    }

    /// The last layer's pre-normalisation output for prepared inputs.
    pub(crate) fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut a = x.to_owned();
        for (i, layer) in self.layers.iter().enumerate() {
            let mut z = a.dot(&layer.w.t());
            z += &layer.b;
            if i + 1 < self.layers.len() {
                z.mapv_inplace(|v| v.max(0.0));
            }
            a = z;
        }
        a
    }

    /// Project stored-form vectors (one per row, any length from the model's width on):
    /// unit rows of [`Projection::output_dim`].
    pub fn project(&self, vectors: &[&[f32]]) -> Array2<f32> {
        let x = input_rows(vectors, self.meta.input_dim, &self.mean);
        let mut z = self.forward(x.view());
        normalise_rows(&mut z);
        z
    }

    /// Project every row of a row-major matrix of stored vectors, in blocks (bounded
    /// memory for large catalogues).
    pub fn project_matrix(&self, matrix: &[f32], dim: usize) -> Vec<f32> {
        let m = self.output_dim();
        let n = matrix.len().checked_div(dim).unwrap_or(0);
        let mut out = Vec::with_capacity(n * m);
        for block in matrix.chunks(4096 * dim.max(1)) {
            let rows: Vec<&[f32]> = block.chunks_exact(dim).collect();
            out.extend(self.project(&rows).iter());
        }
        out
    }

    /// Scores of a trained search for `candidates` (stored-form vectors with their stored
    /// scores against the query): the blend with the projected cosine.
    pub fn rescore(&self, query: &[f32], candidates: &[(&[f32], f32)], mix: f32) -> Vec<f32> {
        let mut rows: Vec<&[f32]> = Vec::with_capacity(candidates.len() + 1);
        rows.push(query);
        rows.extend(candidates.iter().map(|(v, _)| *v));
        let p = self.project(&rows);
        let q = p.row(0);
        candidates
            .iter()
            .zip(p.rows().into_iter().skip(1))
            .map(|((_, stored), row)| blend(*stored, q.dot(&row), mix))
            .collect()
    }

    /// [`Projection::rescore`] for items of an index, given by key: each item's projected
    /// vector is taken from `cache`, or computed (in one batch with the other misses) and
    /// kept there.
    pub fn rescore_items(
        &self,
        cache: &ProjectedCache,
        query: &[f32],
        candidates: &[(u32, &[f32], f32)],
        mix: f32,
    ) -> Vec<f32> {
        let mut found: Vec<Option<Arc<[f32]>>> = match cache.map.read() {
            Ok(map) => candidates.iter().map(|(key, _, _)| map.get(key).cloned()).collect(),
            Err(_) => vec![None; candidates.len()],
        };
        let misses: Vec<usize> = (0..candidates.len()).filter(|&i| found[i].is_none()).collect();
        let mut rows: Vec<&[f32]> = Vec::with_capacity(misses.len() + 1);
        rows.push(query);
        rows.extend(misses.iter().map(|&i| candidates[i].1));
        let p = self.project(&rows);
        if !misses.is_empty() {
            let mut map = cache.map.write().ok();
            if let Some(m) = map.as_mut().filter(|m| m.len() + misses.len() > CACHE_LIMIT) {
                m.clear();
            }
            for (&i, row) in misses.iter().zip(p.rows().into_iter().skip(1)) {
                let v: Arc<[f32]> = row.iter().copied().collect();
                if let Some(m) = map.as_mut() {
                    m.insert(candidates[i].0, v.clone());
                }
                found[i] = Some(v);
            }
        }
        let q: Vec<f32> = p.row(0).to_vec();
        candidates
            .iter()
            .zip(found)
            .map(|((_, _, stored), v)| {
                blend(*stored, v.map_or(0.0, |v| crate::kernel::dot(&q, &v)), mix)
            })
            .collect()
    }

    /// The file's bytes: magic, format version, JSON header length and header, then the
    /// little-endian f32 parameters (mean, each layer's weights and biases, proxies), then
    /// a BLAKE3 hash of everything before it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.meta).unwrap_or_default();
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        let mut put = |xs: &mut dyn Iterator<Item = &f32>| {
            for x in xs {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
        put(&mut self.mean.iter());
        for l in &self.layers {
            put(&mut l.w.iter());
            put(&mut l.b.iter());
        }
        put(&mut self.proxies.iter());
        let hash = blake3::hash(&out);
        out.extend_from_slice(hash.as_bytes());
        out
    }

    /// Read what [`Projection::to_bytes`] wrote; `path` names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, ProjectionError> {
        let corrupt =
            |message: &str| ProjectionError::Corrupt { path: path.into(), message: message.into() };
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(ProjectionError::NotAProjection { path: path.into() });
        }
        let word = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let version = word(8);
        if version > FORMAT_VERSION {
            return Err(ProjectionError::UnsupportedVersion {
                path: path.into(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if bytes.len() < 16 + 32 {
            return Err(corrupt("too short"));
        }
        let (body, hash) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != hash {
            return Err(corrupt("checksum mismatch"));
        }
        let header_len = word(12) as usize;
        let header = body.get(16..16 + header_len).ok_or_else(|| corrupt("header cut short"))?;
        let meta: ProjectionMeta =
            serde_json::from_slice(header).map_err(|e| corrupt(&e.to_string()))?;
        let floats = &body[16 + header_len..];
        if floats.len() % 4 != 0 {
            return Err(corrupt("parameters cut short"));
        }
        let mut values =
            floats.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let mut take = |n: usize| -> Result<Vec<f32>, ProjectionError> {
            let v: Vec<f32> = values.by_ref().take(n).collect();
            if v.len() == n { Ok(v) } else { Err(corrupt("parameters cut short")) }
        };
        let mean = Array1::from(take(meta.input_dim)?);
        let mut layers = Vec::with_capacity(meta.layers.len());
        let mut fan_in = meta.input_dim;
        for &out in &meta.layers {
            let w = Array2::from_shape_vec((out, fan_in), take(out * fan_in)?)
                .map_err(|e| corrupt(&e.to_string()))?;
            let b = Array1::from(take(out)?);
            layers.push(Dense { w, b });
            fan_in = out;
        }
        if layers.is_empty() {
            return Err(corrupt("no layers"));
        }
        let proxies = Array2::from_shape_vec(
            (meta.classes.len(), fan_in),
            take(meta.classes.len() * fan_in)?,
        )
        .map_err(|e| corrupt(&e.to_string()))?;
        if values.next().is_some() {
            return Err(corrupt("trailing parameters"));
        }
        Ok(Self { meta, mean, layers, proxies })
    }

    /// The projection an index's store keeps, `None` when it has none.
    pub fn read(store: &dyn crate::store::Store) -> Result<Option<Self>, ProjectionError> {
        let path = Path::new(PROJECTION_FILE);
        match store.read_file(PROJECTION_FILE) {
            Ok(Some(bytes)) => Self::from_bytes(&bytes, path).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(ProjectionError::Unreadable { message: crate::error::chain(&e) }),
        }
    }

    /// The class proxies' nearest labels for a stored-form vector, best first, with
    /// their softmax probabilities (what the projection believes the item is).
    pub fn classify(&self, v: &[f32], top: usize) -> Vec<(String, f32)> {
        let p = self.project(&[v]);
        let mut proxies = self.proxies.clone();
        normalise_rows(&mut proxies);
        let logits = proxies.dot(&p.row(0)) * self.meta.config.scale;
        let max = logits.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let exp = logits.mapv(|l| (l - max).exp());
        let sum = exp.sum();
        let mut out: Vec<(String, f32)> =
            self.meta.classes.iter().cloned().zip(exp.iter().map(|e| e / sum)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.truncate(top);
        out
    }

    pub(crate) fn new(
        meta: ProjectionMeta,
        mean: Array1<f32>,
        layers: Vec<Dense>,
        proxies: Array2<f32>,
    ) -> Self {
        Self { meta, mean, layers, proxies }
    }

    pub(crate) fn meta_mut(&mut self) -> &mut ProjectionMeta {
        &mut self.meta
    }
}

#[cfg(test)]
mod tests;
