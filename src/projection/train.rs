//! Training a projection on an index's labels (`lookalike train`): a normalised-softmax
//! loss (a cosine classifier against one learned proxy per label value) over the frozen
//! model embeddings, minibatch AdamW with a cosine learning-rate decay, seeded.
//!
//! The gradients are written out by hand: one or two dense layers and a normalisation do
//! not justify an autodiff framework in the build, and the matrix products go through the
//! SGEMM already used for batched scoring (ndarray → matrixmultiply). The tests check
//! every gradient against finite differences.

use std::time::Instant;

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::{Dense, Projection, ProjectionError, ProjectionMeta, input_rows, normalise_rows};
use crate::error::{Error, Result};

/// How a projection is trained. The defaults are the measured best (BENCHMARKS.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    /// Width of the hidden ReLU layer; 0 for a single linear layer.
    pub hidden: usize,
    /// Width of the projected vectors.
    pub dim: usize,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f32,
    /// Decoupled weight decay on the layers' weights (AdamW).
    pub weight_decay: f32,
    /// Logit scale of the cosine classifier (its inverse temperature).
    pub scale: f32,
    /// Share of input components zeroed at random in each training batch (dropout on the
    /// embedding): keeps the projection from leaning on a few features of studio shots.
    #[serde(default)]
    pub input_dropout: f32,
    pub seed: u64,
    /// Most items trained on; a larger index trains on a seeded sample of this many (the
    /// inputs are held in memory twice, 5 kB per item each).
    #[serde(default = "default_max_items")]
    pub max_items: usize,
}

fn default_max_items() -> usize {
    MAX_TRAIN_ITEMS
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            hidden: 512,
            dim: 256,
            epochs: 20,
            batch: 256,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            scale: 16.0,
            input_dropout: 0.0,
            seed: 0x5EED_7EA1,
            max_items: MAX_TRAIN_ITEMS,
        }
    }
}

impl TrainConfig {
    fn check(&self) -> Result<(), ProjectionError> {
        let bad = |name, message: &str| {
            Err(ProjectionError::BadParameter { name, message: message.to_string() })
        };
        if !(1..=4096).contains(&self.dim) {
            return bad("dim", "must be in 1..=4096");
        }
        if self.hidden > 8192 {
            return bad("hidden", "must be at most 8192");
        }
        if !(1..=1000).contains(&self.epochs) {
            return bad("epochs", "must be in 1..=1000");
        }
        if !(1..=65536).contains(&self.batch) {
            return bad("batch", "must be in 1..=65536");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learning-rate", "must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.weight_decay) {
            return bad("weight-decay", "must be in 0..=1");
        }
        if !(self.scale > 0.0 && self.scale <= 100.0) {
            return bad("scale", "must be in (0, 100]");
        }
        if self.max_items < 2 {
            return bad("max-items", "must be at least 2");
        }
        if !(0.0..0.95).contains(&self.input_dropout) {
            return bad("input-dropout", "must be in 0..0.95");
        }
        Ok(())
    }
}

/// One epoch's figures, as training goes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EpochStats {
    pub epoch: usize,
    /// Mean loss over the epoch's batches.
    pub loss: f32,
    /// Share of training items whose nearest proxy was their own label (while training).
    pub accuracy: f32,
    pub seconds: f64,
}

/// Deterministic pseudo-random numbers (SplitMix64): the same seed gives the same
/// projection on every machine.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-a, a).
    pub(crate) fn uniform(&mut self, a: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        (2.0 * unit - 1.0) * a
    }

    pub(crate) fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            xs.swap(i, j);
        }
    }
}

/// Gradients of the mean loss, shaped as the parameters.
#[derive(Debug, Clone)]
pub(crate) struct Grads {
    pub(crate) layers: Vec<(Array2<f32>, Array1<f32>)>,
    pub(crate) proxies: Array2<f32>,
}

/// The mean normalised-softmax loss of a batch (prepared inputs `x`, class indices `y`),
/// how many of its items were classified right, and the gradients of every parameter.
pub(crate) fn loss_and_grads(
    p: &Projection,
    x: ArrayView2<f32>,
    y: &[u32],
    scale: f32,
) -> (f32, usize, Grads) {
    let b = x.nrows();
    // Forward, keeping each layer's input.
    let mut inputs: Vec<Array2<f32>> = vec![x.to_owned()];
    let mut out = Array2::zeros((0, 0));
    for (i, layer) in p.layers.iter().enumerate() {
        let mut z = inputs[i].dot(&layer.w.t());
        z += &layer.b;
        if i + 1 < p.layers.len() {
            z.mapv_inplace(|v| v.max(0.0));
            inputs.push(z);
        } else {
            out = z;
        }
    }
    let mut u = out;
    let u_norms = normalise_rows(&mut u);
    let mut c = p.proxies.clone();
    let c_norms = normalise_rows(&mut c);
    let logits = u.dot(&c.t()) * scale;

    // Softmax cross-entropy; g = (softmax − one-hot) / b is the gradient w.r.t. logits.
    let mut g = Array2::<f32>::zeros(logits.raw_dim());
    let mut loss = 0.0f64;
    let mut correct = 0usize;
    for (r, (row, mut grow)) in logits.rows().into_iter().zip(g.rows_mut()).enumerate() {
        let max = row.fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
        let target = y[r] as usize;
        loss += f64::from(sum.ln() + max - row[target]);
        let best =
            row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(usize::MAX, |(i, _)| i);
        if best == target {
            correct += 1;
        }
        for (k, (o, &v)) in grow.iter_mut().zip(row.iter()).enumerate() {
            let soft = (v - max).exp() / sum;
            *o = (soft - if k == target { 1.0 } else { 0.0 }) / b as f32;
        }
    }

    // Through the two cosines: logits = scale · U Ĉᵀ.
    let du = g.dot(&c) * scale;
    let dc = g.t().dot(&u) * scale;
    let d_out = unnormalise_grad(&u, &u_norms, du);
    let d_proxies = unnormalise_grad(&c, &c_norms, dc);

    // Back through the layers.
    let mut layer_grads = Vec::with_capacity(p.layers.len());
    let mut d = d_out;
    for i in (0..p.layers.len()).rev() {
        let dw = d.t().dot(&inputs[i]);
        let db = d.sum_axis(Axis(0));
        if i > 0 {
            let mut dprev = d.dot(&p.layers[i].w);
            dprev.zip_mut_with(&inputs[i], |g, &a| {
                if a <= 0.0 {
                    *g = 0.0;
                }
            });
            d = dprev;
        }
        layer_grads.push((dw, db));
    }
    layer_grads.reverse();
    ((loss / b.max(1) as f64) as f32, correct, Grads { layers: layer_grads, proxies: d_proxies })
}

/// The gradient w.r.t. `z` given the gradient `du` w.r.t. `u = z / |z|` (row-wise).
fn unnormalise_grad(u: &Array2<f32>, norms: &[f32], mut du: Array2<f32>) -> Array2<f32> {
    for ((mut g, ur), &n) in du.rows_mut().into_iter().zip(u.rows()).zip(norms) {
        if n > 0.0 && n.is_finite() {
            let along = g.dot(&ur);
            g.zip_mut_with(&ur, |a, &b| *a = (*a - along * b) / n);
        } else {
            g.fill(0.0);
        }
    }
    du
}

/// Adam's moment estimates for one parameter tensor.
struct Moments<D: ndarray::Dimension> {
    m: ndarray::Array<f32, D>,
    v: ndarray::Array<f32, D>,
}

impl<D: ndarray::Dimension> Moments<D> {
    fn like(p: &ndarray::Array<f32, D>) -> Self {
        Self { m: ndarray::Array::zeros(p.raw_dim()), v: ndarray::Array::zeros(p.raw_dim()) }
    }

    /// One AdamW step of `param` along `grad` (`decay`: decoupled weight decay).
    fn step(
        &mut self,
        param: &mut ndarray::Array<f32, D>,
        grad: &ndarray::Array<f32, D>,
        lr: f32,
        decay: f32,
        t: i32,
    ) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        const EPS: f32 = 1e-8;
        let c1 = 1.0 - B1.powi(t);
        let c2 = 1.0 - B2.powi(t);
        ndarray::Zip::from(param).and(grad).and(&mut self.m).and(&mut self.v).for_each(
            |p, &g, m, v| {
                *m = B1 * *m + (1.0 - B1) * g;
                *v = B2 * *v + (1.0 - B2) * g * g;
                let step = (*m / c1) / ((*v / c2).sqrt() + EPS);
                *p -= lr * (step + decay * *p);
            },
        );
    }
}

/// What the caller knows of the training data besides the vectors.
#[derive(Debug, Clone)]
pub struct TrainData<'a> {
    /// Stored-form vectors (the model's part is read, a colour part ignored).
    pub vectors: Vec<&'a [f32]>,
    /// Each vector's class, an index into `classes`.
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
    /// The model's embedding width.
    pub input_dim: usize,
    pub label: String,
    pub model_hash: String,
    pub holdout_excluded: bool,
}

/// Train a projection. `progress` hears about each epoch as it ends.
pub fn fit(
    data: &TrainData<'_>,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(&EpochStats),
) -> Result<Projection, ProjectionError> {
    cfg.check()?;
    let n = data.vectors.len();
    if data.labels.len() != n {
        return Err(ProjectionError::NotEnoughData("one label per vector is needed".into()));
    }
    if data.classes.len() < 2 || n < 2 {
        return Err(ProjectionError::NotEnoughData(format!(
            "{n} labelled items in {} classes; at least 2 of each are needed",
            data.classes.len()
        )));
    }
    if data.labels.iter().any(|&l| l as usize >= data.classes.len()) {
        return Err(ProjectionError::NotEnoughData("a label is out of range".into()));
    }
    if let Some(v) = data.vectors.iter().find(|v| v.len() < data.input_dim) {
        return Err(ProjectionError::DimensionMismatch { expected: data.input_dim, got: v.len() });
    }
    let started = Instant::now();
    let d = data.input_dim;

    // Centred on the mean of the unit embeddings: the scaled rows less their mean are
    // what `input_rows` gives with that mean (one pass over the vectors, one matrix).
    let zero = Array1::zeros(d);
    let mut x = input_rows(&data.vectors, d, &zero);
    let scaled_mean = x.mean_axis(Axis(0)).unwrap_or(zero);
    x -= &scaled_mean;
    let mean = scaled_mean / (d as f32).sqrt();

    let mut rng = SplitMix::new(cfg.seed);
    let widths: Vec<usize> = if cfg.hidden > 0 { vec![cfg.hidden, cfg.dim] } else { vec![cfg.dim] };
    let mut layers = Vec::with_capacity(widths.len());
    let mut fan_in = d;
    for (i, &out) in widths.iter().enumerate() {
        // He initialisation before a ReLU, Glorot for the last (linear) layer.
        let a = if i + 1 < widths.len() {
            (6.0 / fan_in as f32).sqrt()
        } else {
            (6.0 / (fan_in + out) as f32).sqrt()
        };
        let w = Array2::from_shape_simple_fn((out, fan_in), || rng.uniform(a));
        layers.push(Dense { w, b: Array1::zeros(out) });
        fan_in = out;
    }
    let proxies = Array2::from_shape_simple_fn((data.classes.len(), cfg.dim), || rng.uniform(1.0));
    let meta = ProjectionMeta {
        label: data.label.clone(),
        classes: data.classes.clone(),
        input_dim: d,
        layers: widths,
        model_hash: data.model_hash.clone(),
        holdout_excluded: data.holdout_excluded,
        items: n,
        config: cfg.clone(),
        final_loss: f32::NAN,
        final_accuracy: 0.0,
        seconds: 0.0,
    };
    let mut proj = Projection::new(meta, mean, layers, proxies);

    let mut moments: Vec<(Moments<ndarray::Ix2>, Moments<ndarray::Ix1>)> =
        proj.layers.iter().map(|l| (Moments::like(&l.w), Moments::like(&l.b))).collect();
    let mut proxy_moments = Moments::like(&proj.proxies);
    let mut order: Vec<usize> = (0..n).collect();
    let batches_per_epoch = n.div_ceil(cfg.batch);
    let total_steps = (batches_per_epoch * cfg.epochs) as f32;
    let mut t = 0i32;
    for epoch in 1..=cfg.epochs {
        let epoch_start = Instant::now();
        rng.shuffle(&mut order);
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        for chunk in order.chunks(cfg.batch) {
            let mut xb = x.select(Axis(0), chunk);
            if cfg.input_dropout > 0.0 {
                let keep = 1.0 - cfg.input_dropout;
                let threshold = (f64::from(cfg.input_dropout) * (1u64 << 53) as f64) as u64;
                xb.mapv_inplace(|a| if rng.next_u64() >> 11 < threshold { 0.0 } else { a / keep });
            }
            let yb: Vec<u32> = chunk.iter().map(|&i| data.labels[i]).collect();
            let (loss, right, grads) = loss_and_grads(&proj, xb.view(), &yb, cfg.scale);
            if !loss.is_finite() {
                return Err(ProjectionError::NotEnoughData(format!(
                    "the loss diverged at epoch {epoch}; lower the learning rate"
                )));
            }
            loss_sum += f64::from(loss);
            correct += right;
            // Cosine decay from the full rate to zero over the whole run.
            let lr = cfg.learning_rate
                * 0.5
                * (1.0 + (std::f32::consts::PI * t as f32 / total_steps).cos());
            t += 1;
            for ((layer, (gw, gb)), (mw, mb)) in
                proj.layers.iter_mut().zip(&grads.layers).zip(&mut moments)
            {
                mw.step(&mut layer.w, gw, lr, cfg.weight_decay, t);
                mb.step(&mut layer.b, gb, lr, 0.0, t);
            }
            proxy_moments.step(&mut proj.proxies, &grads.proxies, lr, 0.0, t);
        }
        let stats = EpochStats {
            epoch,
            loss: (loss_sum / batches_per_epoch as f64) as f32,
            accuracy: correct as f32 / n as f32,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        let meta = proj.meta_mut();
        meta.final_loss = stats.loss;
        meta.final_accuracy = stats.accuracy;
        progress(&stats);
    }
    proj.meta_mut().seconds = started.elapsed().as_secs_f64();
    Ok(proj)
}

/// Most items a projection is trained on unless told ([`TrainConfig::max_items`]).
pub const MAX_TRAIN_ITEMS: usize = 250_000;

/// What `lookalike train` did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub label: String,
    pub items: usize,
    pub classes: usize,
    /// Items left out because they are in the held-out split.
    pub held_out: usize,
    /// Items left out for want of a label (or in a class of one).
    pub unlabelled: usize,
    /// Items left out by sampling (beyond [`TrainConfig::max_items`]).
    pub sampled_out: usize,
    pub final_loss: f32,
    pub final_accuracy: f32,
    pub seconds: f64,
    pub path: String,
}

/// Train a projection on the items of the index at `location` by the label `label` (a column
/// or columns joined with `+`) and store it in the index folder. Items of the held-out
/// split are left out unless `include_holdout`; label values held by a single item are
/// left out too (nothing to pull together).
pub fn train_index(
    location: &crate::location::Location,
    label: &str,
    include_holdout: bool,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(&EpochStats),
) -> Result<(Projection, TrainReport)> {
    cfg.check().map_err(Error::from)?;
    let (store, info) = location.open_index()?;
    let cols =
        crate::label::parse_labels(&[label.to_string()], &info.columns)?.pop().unwrap_or_default();
    let mut vectors: Vec<Vec<f32>> = Vec::new();
    let mut values: Vec<String> = Vec::new();
    let (mut held_out, mut unlabelled) = (0usize, 0usize);
    crate::index::for_each_item(store.as_ref(), info.dim, &mut |id, record, v| {
        if !include_holdout && crate::split::in_holdout(id) {
            held_out += 1;
            return;
        }
        match crate::label::label_value(&record.metadata, &cols) {
            Some(value) if !value.trim().is_empty() => {
                vectors.push(v[..info.model.dim.min(v.len())].to_vec());
                values.push(value);
            }
            _ => unlabelled += 1,
        }
    })?;
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for v in &values {
        *counts.entry(v.as_str()).or_insert(0) += 1;
    }
    let classes: Vec<String> =
        counts.iter().filter(|(_, c)| **c >= 2).map(|(v, _)| v.to_string()).collect();
    let class_of: std::collections::HashMap<&str, u32> =
        classes.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect();
    let mut kept: Vec<&[f32]> = Vec::with_capacity(vectors.len());
    let mut labels = Vec::with_capacity(vectors.len());
    for (v, value) in vectors.iter().zip(&values) {
        match class_of.get(value.as_str()) {
            Some(&c) => {
                kept.push(v);
                labels.push(c);
            }
            None => unlabelled += 1,
        }
    }
    let sampled_out = kept.len().saturating_sub(cfg.max_items);
    if sampled_out > 0 {
        let mut order: Vec<usize> = (0..kept.len()).collect();
        SplitMix::new(cfg.seed).shuffle(&mut order);
        order.truncate(cfg.max_items);
        order.sort_unstable();
        kept = order.iter().map(|&i| kept[i]).collect();
        labels = order.iter().map(|&i| labels[i]).collect();
    }
    let data = TrainData {
        vectors: kept,
        labels,
        classes,
        input_dim: info.model.dim,
        label: cols.join("+"),
        model_hash: info.model_hash.clone(),
        holdout_excluded: !include_holdout,
    };
    let proj = fit(&data, cfg, progress).map_err(Error::from)?;
    // Kept by the index's store: a file in a folder, rows of a collection.
    store.write_file(super::PROJECTION_FILE, &proj.to_bytes())?;
    let path = location.file_place(super::PROJECTION_FILE);
    let report = TrainReport {
        label: data.label.clone(),
        items: data.vectors.len(),
        classes: data.classes.len(),
        held_out,
        unlabelled,
        sampled_out,
        final_loss: proj.meta().final_loss,
        final_accuracy: proj.meta().final_accuracy,
        seconds: proj.meta().seconds,
        path,
    };
    Ok((proj, report))
}
