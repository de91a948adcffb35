//! Runs an image model on prepared tensors and returns L2-normalised embeddings.
//!
//! Two inference backends sit behind [`Embedder`]: ONNX Runtime (through `ort`, loaded
//! at run time from the `onnxruntime` Python wheel or a path the user gives), the fast
//! one and the default, and pure-Rust `tract` (Cargo feature `tract`, off by default: its
//! compile time is paid only by those who run without ONNX Runtime). Both must produce
//! the same vectors for the same tensors.

mod ort_backend;
mod runtime;
#[cfg(feature = "tract")]
mod tract_backend;

use std::path::PathBuf;

use image::RgbImage;

use crate::colour;
use crate::model::{ModelSpec, ResolvedModel};
use crate::preprocess::{self, Crop, PreprocessError};

pub use runtime::find_onnxruntime;

/// Errors from loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    RuntimeLoad { path: PathBuf, message: String },
    #[error(
        "ONNX Runtime library not found: install it with scripts/setup.sh or set ORT_DYLIB_PATH"
    )]
    RuntimeMissing,
    #[error("cannot load model {path}: {message}")]
    ModelLoad { path: PathBuf, message: String },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("model output has {got} values per image, the manifest says dim = {expected}")]
    DimensionMismatch { expected: usize, got: usize },
    #[error("the model is not prepared for {size} px inputs (it runs at {sizes})")]
    UnsupportedSize { size: u32, sizes: String },
    #[error(
        "this lookalike was built without the tract backend: rebuild with `--features tract`, \
         or use ONNX Runtime (scripts/setup.sh)"
    )]
    TractNotBuilt,
    #[error("model produced a non-finite embedding")]
    NonFinite,
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
}

/// Which inference engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// ONNX Runtime when its library can be found, tract otherwise (when built in).
    #[default]
    Auto,
    Ort,
    Tract,
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "ort" | "onnxruntime" => Ok(Self::Ort),
            "tract" => Ok(Self::Tract),
            other => Err(format!("unknown backend '{other}': use auto, ort or tract")),
        }
    }
}

enum Backend {
    Ort(ort_backend::OrtBackend),
    #[cfg(feature = "tract")]
    Tract(tract_backend::TractBackend),
}

#[cfg(feature = "tract")]
fn tract(model: &ResolvedModel) -> Result<Backend, EmbedError> {
    Ok(Backend::Tract(tract_backend::TractBackend::load(model)?))
}

#[cfg(not(feature = "tract"))]
fn tract(_: &ResolvedModel) -> Result<Backend, EmbedError> {
    Err(EmbedError::TractNotBuilt)
}

/// How many runs of the model may go on at once, and on how many threads each: a
/// command embedding one photo or a batch runs one at a time on every core; a server
/// runs one per search worker, each on every core too: a lone shopper's photo is as
/// quick as a command's, and under load the runs side by side waste less than one run
/// at a time split across the cores (16 shoppers on 2 cores: 98 searches/s against 78;
/// BENCHMARKS.md, "Model runs side by side"). ONNX Runtime keeps a session per
/// concurrent run, its threads idle without spinning; tract ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    pub sessions: usize,
    pub threads: usize,
}

impl Default for Parallelism {
    /// One run at a time on every core.
    fn default() -> Self {
        Self { sessions: 1, threads: cores() }
    }
}

impl Parallelism {
    /// `workers` runs side by side, each on every core.
    pub fn per_worker(workers: usize) -> Self {
        Self { sessions: workers.max(1), threads: cores() }
    }
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What one run of the model gives back.
pub(crate) struct Outputs {
    /// `n * dim` raw embedding values.
    pub embedding: Vec<f32>,
    /// The garment mask, when asked for and the model has one.
    pub mask: Option<Mask>,
}

/// A garment probability per cell of the input square (see [`crate::garment`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    pub values: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

/// A model's output per cell of its input square: `channels x rows x cols` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Cells {
    pub values: Vec<f32>,
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
}

/// A loaded model ready to embed photos.
pub struct Embedder {
    spec: ModelSpec,
    backend: Backend,
    /// Weight of the colour histogram appended to each embedding (0: none).
    colour_weight: f32,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.spec.name)
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl Embedder {
    /// Load `model` on the chosen backend, one run at a time on every core.
    pub fn new(model: &ResolvedModel, kind: BackendKind) -> Result<Self, EmbedError> {
        Self::with_parallelism(model, kind, Parallelism::default())
    }

    /// Load `model` on the chosen backend for `par` runs at once.
    pub fn with_parallelism(
        model: &ResolvedModel,
        kind: BackendKind,
        par: Parallelism,
    ) -> Result<Self, EmbedError> {
        let backend = match kind {
            BackendKind::Tract => tract(model)?,
            BackendKind::Ort => Backend::Ort(ort_backend::OrtBackend::load(model, par)?),
            BackendKind::Auto => match ort_backend::OrtBackend::load(model, par) {
                Ok(b) => Backend::Ort(b),
                Err(EmbedError::RuntimeMissing) if cfg!(feature = "tract") => {
                    tracing::info!(
                        "ONNX Runtime not found; using the slower pure-Rust tract backend"
                    );
                    tract(model)?
                }
                Err(e) => return Err(e),
            },
        };
        Ok(Self { spec: model.spec.clone(), backend, colour_weight: 0.0 })
    }

    /// Append the colour histogram of each photo with weight `w` (0: none); see
    /// [`crate::colour`].
    pub fn with_colour(mut self, w: f32) -> Self {
        self.colour_weight = w;
        self
    }

    /// Length of the vectors this embedder returns.
    pub fn dim(&self) -> usize {
        self.spec.dim + if self.colour_weight > 0.0 { colour::BINS } else { 0 }
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Ort(_) => "onnxruntime",
            #[cfg(feature = "tract")]
            Backend::Tract(_) => "tract",
        }
    }

    /// Elements of one input tensor at the catalogue's size.
    pub fn input_len(&self) -> usize {
        input_len(self.spec.size)
    }

    /// Embed `n` tensors laid end to end in `batch`; returns `n * dim` normalised values.
    pub fn embed_tensors(&self, batch: &[f32], n: usize) -> Result<Vec<f32>, EmbedError> {
        self.embed_tensors_at(batch, n, self.spec.size)
    }

    fn run(&self, batch: &[f32], n: usize, size: u32, mask: bool) -> Result<Outputs, EmbedError> {
        if !self.spec.input_sizes().contains(&size) {
            return Err(EmbedError::UnsupportedSize {
                size,
                sizes: self
                    .spec
                    .input_sizes()
                    .iter()
                    .map(|s| format!("{s} px"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if batch.len() != n * input_len(size) {
            return Err(EmbedError::Inference(format!(
                "batch holds {} values, expected {} for {n} images",
                batch.len(),
                n * input_len(size)
            )));
        }
        match &self.backend {
            Backend::Ort(b) => b.run(&self.spec, batch, n, size, mask),
            #[cfg(feature = "tract")]
            Backend::Tract(b) => b.run(&self.spec, batch, n, size, mask),
        }
    }

    /// The model's outputs named `names` for one input tensor of side `size`, each
    /// flattened (e.g. `article_probs`, to check a heads file against the network itself).
    /// ONNX Runtime only: tract plans keep just the outputs the manifest names.
    pub fn named_outputs(
        &self,
        tensor: &[f32],
        size: u32,
        names: &[&str],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        match &self.backend {
            Backend::Ort(b) => b.named_outputs(&self.spec, tensor, size, names),
            #[cfg(feature = "tract")]
            Backend::Tract(_) => {
                Err(EmbedError::Inference("named outputs need ONNX Runtime (--backend ort)".into()))
            }
        }
    }

    /// The model's output per cell for one input tensor of side `size` (a model whose
    /// output is a map, `[1, channels, rows, cols]`: the garment finder's kinds).
    /// ONNX Runtime only.
    pub fn cells(&self, tensor: &[f32], size: u32) -> Result<Cells, EmbedError> {
        if tensor.len() != input_len(size) {
            return Err(EmbedError::Inference(format!(
                "the tensor holds {} values, expected {} for a {size} px image",
                tensor.len(),
                input_len(size)
            )));
        }
        let (shape, values) = match &self.backend {
            Backend::Ort(b) => b.shaped_output(&self.spec, tensor, size, &self.spec.output)?,
            #[cfg(feature = "tract")]
            Backend::Tract(_) => {
                return Err(EmbedError::Inference(
                    "the garment finder needs ONNX Runtime (--backend ort)".into(),
                ));
            }
        };
        let dims: Vec<usize> = shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
        match dims.as_slice() {
            [1, channels, rows, cols] if values.len() == channels * rows * cols => {
                Ok(Cells { values, channels: *channels, rows: *rows, cols: *cols })
            }
            _ => Err(EmbedError::Inference(format!(
                "output '{}' has shape {shape:?}, expected [1, channels, rows, cols]",
                self.spec.output
            ))),
        }
    }

    /// The garment mask of one input tensor of side `size` (`None`: the model has none).
    pub fn garment_mask(&self, tensor: &[f32], size: u32) -> Result<Option<Mask>, EmbedError> {
        if self.spec.mask.is_none() {
            return Ok(None);
        }
        Ok(self.run(tensor, 1, size, true)?.mask)
    }

    /// The garment mask of one input tensor of side `size` and the tensor's unit
    /// embedding, from one run (`None`: the model has no mask, and nothing was run).
    pub fn garment_mask_and_embedding(
        &self,
        tensor: &[f32],
        size: u32,
    ) -> Result<Option<(Mask, Vec<f32>)>, EmbedError> {
        if self.spec.mask.is_none() {
            return Ok(None);
        }
        let out = self.run(tensor, 1, size, true)?;
        let Some(mask) = out.mask else { return Ok(None) };
        let mut embedding = out.embedding;
        if embedding.len() != self.spec.dim {
            return Err(EmbedError::DimensionMismatch {
                expected: self.spec.dim,
                got: embedding.len(),
            });
        }
        normalise(&mut embedding)?;
        Ok(Some((mask, embedding)))
    }

    /// [`Embedder::embed_tensors`] for inputs of side `size` (one of the model's sizes).
    pub fn embed_tensors_at(
        &self,
        batch: &[f32],
        n: usize,
        size: u32,
    ) -> Result<Vec<f32>, EmbedError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut out = self.run(batch, n, size, false)?.embedding;
        if out.len() != n * self.spec.dim {
            return Err(EmbedError::DimensionMismatch {
                expected: self.spec.dim,
                got: out.len() / n,
            });
        }
        for v in out.chunks_exact_mut(self.spec.dim) {
            normalise(v)?;
        }
        if self.colour_weight <= 0.0 {
            return Ok(out);
        }
        let mut full = Vec::with_capacity(n * self.dim());
        for (v, t) in out.chunks_exact(self.spec.dim).zip(batch.chunks_exact(input_len(size))) {
            let h = colour::histogram_of_tensor(t, &self.spec);
            colour::compose(v, &h, self.colour_weight, &mut full);
        }
        Ok(full)
    }

    /// One vector from several views of the same photo (`n` tensors of side `size`, and
    /// `extra`, a unit embedding of one more view already computed: the whole photo's,
    /// from the garment mask's run): the unit embeddings averaged and normalised, then
    /// `colour` appended, or without it the colour histogram of the first view (as
    /// [`Embedder::embed_tensors_at`] does for one).
    pub fn embed_views(
        &self,
        views: &[f32],
        n: usize,
        size: u32,
        colour: Option<&[f32; colour::BINS]>,
        extra: Option<&[f32]>,
    ) -> Result<Vec<f32>, EmbedError> {
        if n <= 1 && colour.is_none() && extra.is_none() {
            return self.embed_tensors_at(views, n, size);
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let out = self.run(views, n, size, false)?.embedding;
        if out.len() != n * self.spec.dim || extra.is_some_and(|e| e.len() != self.spec.dim) {
            return Err(EmbedError::DimensionMismatch {
                expected: self.spec.dim,
                got: out.len() / n,
            });
        }
        let mut mean = extra.map_or_else(|| vec![0.0; self.spec.dim], <[f32]>::to_vec);
        for v in out.chunks_exact(self.spec.dim) {
            let mut v = v.to_vec();
            normalise(&mut v)?;
            mean.iter_mut().zip(&v).for_each(|(m, x)| *m += x);
        }
        normalise(&mut mean)?;
        if self.colour_weight <= 0.0 {
            return Ok(mean);
        }
        let h = match colour {
            Some(h) => *h,
            None => colour::histogram_of_tensor(&views[..input_len(size)], &self.spec),
        };
        let mut full = Vec::with_capacity(self.dim());
        colour::compose(&mean, &h, self.colour_weight, &mut full);
        Ok(full)
    }

    /// Embed one decoded photo, optionally cropped first.
    pub fn embed_image(&self, img: &RgbImage, crop: Option<Crop>) -> Result<Vec<f32>, EmbedError> {
        let t = preprocess::tensor(img, &self.spec, crop)?;
        self.embed_tensors(&t, 1)
    }
}

/// Elements of one input tensor of side `size`.
pub fn input_len(size: u32) -> usize {
    3 * (size as usize) * (size as usize)
}

/// Shape of the input tensor for `n` images of side `size`.
pub(crate) fn input_shape(spec: &ModelSpec, n: usize, size: u32) -> [usize; 4] {
    let s = size as usize;
    match spec.layout {
        crate::model::Layout::Nchw => [n, 3, s, s],
        crate::model::Layout::Nhwc => [n, s, s, 3],
    }
}

/// The first image's mask from an output of shape `[n, 1, rows, cols]` (or `[n, rows, cols]`).
pub(crate) fn mask_of(shape: &[i64], data: &[f32]) -> Result<Mask, EmbedError> {
    let dims: Vec<usize> = shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
    let (rows, cols) = match dims.as_slice() {
        [_, 1, r, c] | [_, r, c] => (*r, *c),
        _ => return Err(EmbedError::Inference(format!("mask output has shape {shape:?}"))),
    };
    if rows == 0 || cols == 0 || data.len() < rows * cols {
        return Err(EmbedError::Inference(format!("mask output has shape {shape:?}")));
    }
    Ok(Mask { values: data[..rows * cols].to_vec(), rows, cols })
}

/// Scale `v` to unit length; an all-zero vector stays zero (it matches nothing).
pub fn normalise(v: &mut [f32]) -> Result<(), EmbedError> {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if !norm.is_finite() {
        return Err(EmbedError::NonFinite);
    }
    if norm > 0.0 {
        let inv = (1.0 / norm) as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalise(&mut v).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0.0; 3];
        normalise(&mut z).unwrap();
        assert_eq!(z, vec![0.0; 3]);
        assert!(normalise(&mut [f32::NAN, 1.0]).is_err());
    }

    #[test]
    fn backend_names_parse() {
        assert_eq!("ort".parse::<BackendKind>().unwrap(), BackendKind::Ort);
        assert_eq!("tract".parse::<BackendKind>().unwrap(), BackendKind::Tract);
        assert!("cuda".parse::<BackendKind>().is_err());
    }
}
