//! The colour descriptor: a histogram of the garment's colours (not of the white studio
//! background or padding), appended to the CNN embedding so that "a red dress" finds red
//! dresses first. ImageNet features keep shape and texture but lose most of the colour:
//! on the Kaggle catalogue they put the query's article type in 79% of the top 5 but its
//! type *and* colour in only 30%.
//!
//! A stored vector is `[c, w_i * h] / sqrt(1 + w_i^2)` (`c` the unit CNN embedding, `h`
//! the unit histogram, `w_i` the index's weight), so it stays a unit vector and the scan
//! kernels, the partition and the store need no change. Because both parts are unit vectors,
//! a query can ask for any other weight `w_q` without re-indexing: scaling the query's
//! colour part by `w_q^2 / w_i` ranks by `c·c' + w_q^2 h·h'` exactly ([`reweight`]).
//!
//! The histogram is computed from the model's input tensor, so every path that embeds a
//! photo (indexing, live adds, queries, evaluation) gets the same descriptor from the same
//! square, cropped or padded, image.

use crate::model::{Layout, ModelSpec};

/// Grey levels for pixels with little saturation (hue is noise there).
const GREY_BINS: usize = 6;
const HUE_BINS: usize = 12;
const SAT_BINS: usize = 2;
const VAL_BINS: usize = 3;
/// Length of the colour histogram.
pub const BINS: usize = GREY_BINS + HUE_BINS * SAT_BINS * VAL_BINS;

/// A pixel whose channels are all at least this is background (studio white, padding).
const WHITE_MIN: f32 = 232.0;
/// Below this saturation, or below this value, a pixel counts as grey/black.
const GREY_SAT: f32 = 0.2;
const DARK_VAL: f32 = 0.2;
/// A photo with fewer garment pixels than this share is a white garment on white: all
/// its pixels count.
const MIN_GARMENT_SHARE: f32 = 0.01;

/// The histogram bin of one RGB pixel (0..=255 per channel).
fn bin(r: f32, g: f32, b: f32) -> usize {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let v = max / 255.0;
    let s = if max > 0.0 { (max - min) / max } else { 0.0 };
    if s < GREY_SAT || v < DARK_VAL {
        return ((v * GREY_BINS as f32) as usize).min(GREY_BINS - 1);
    }
    let d = max - min;
    let h = if max == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    }; // 0..6
    let hb = ((h / 6.0 * HUE_BINS as f32) as usize).min(HUE_BINS - 1);
    let sb = (((s - GREY_SAT) / (1.0 - GREY_SAT) * SAT_BINS as f32) as usize).min(SAT_BINS - 1);
    let vb = (((v - DARK_VAL) / (1.0 - DARK_VAL) * VAL_BINS as f32) as usize).min(VAL_BINS - 1);
    GREY_BINS + (hb * SAT_BINS + sb) * VAL_BINS + vb
}

/// The unit colour histogram of RGB pixels given as `(r, g, b)` in 0..=255: counts of the
/// non-background pixels, square-rooted (so that a large area of one colour does not drown
/// the rest), L2-normalised.
pub fn histogram(pixels: impl Iterator<Item = [f32; 3]> + Clone) -> [f32; BINS] {
    let mut garment = [0f32; BINS];
    let mut all = [0f32; BINS];
    let (mut n_garment, mut n_all) = (0usize, 0usize);
    for [r, g, b] in pixels {
        let i = bin(r, g, b);
        all[i] += 1.0;
        n_all += 1;
        if r.min(g).min(b) < WHITE_MIN {
            garment[i] += 1.0;
            n_garment += 1;
        }
    }
    let h = if (n_garment as f32) < MIN_GARMENT_SHARE * n_all as f32 { all } else { garment };
    unit(h)
}

/// Counts square-rooted and L2-normalised.
fn unit(mut h: [f32; BINS]) -> [f32; BINS] {
    for x in &mut h {
        *x = x.sqrt();
    }
    let norm = h.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        h.iter_mut().for_each(|x| *x /= norm);
    }
    h
}

/// A mask cell this sure counts as garment for its colour: stricter than the crop's
/// threshold ([`crate::garment::THRESHOLD`]), since a floor cell taken for garment
/// colours the histogram, while for the crop it only costs a little background.
pub const MASK_SURE: f32 = 0.5;
/// Fewer sure garment pixels than this share of the square: no garment colour.
const MIN_MASKED_SHARE: f32 = 0.02;

/// The colour histogram of a snapshot's garment: the pixels of a model input tensor
/// (`size` square) whose cell of the `rows x cols` garment mask is sure, white ones
/// included (a white shirt on a wooden floor is white; the studio rule of
/// [`histogram`] would keep only the floor). `None` when too little is sure garment.
pub fn histogram_of_masked(
    tensor: &[f32],
    spec: &ModelSpec,
    size: u32,
    mask: &[f32],
    rows: usize,
    cols: usize,
) -> Option<[f32; BINS]> {
    let side = size as usize;
    let n = side * side;
    if tensor.len() != 3 * n || rows == 0 || cols == 0 || mask.len() != rows * cols {
        return None;
    }
    let px = |c: usize, x: f32| ((x * spec.std[c] + spec.mean[c]) * 255.0).clamp(0.0, 255.0);
    let rgb = |i: usize| match spec.layout {
        Layout::Nchw => [px(0, tensor[i]), px(1, tensor[n + i]), px(2, tensor[2 * n + i])],
        Layout::Nhwc => [px(0, tensor[3 * i]), px(1, tensor[3 * i + 1]), px(2, tensor[3 * i + 2])],
    };
    let mut h = [0f32; BINS];
    let mut count = 0usize;
    for y in 0..side {
        let row = (y * rows / side) * cols;
        for x in 0..side {
            if mask[row + x * cols / side] >= MASK_SURE {
                let [r, g, b] = rgb(y * side + x);
                h[bin(r, g, b)] += 1.0;
                count += 1;
            }
        }
    }
    ((count as f32) >= MIN_MASKED_SHARE * n as f32).then(|| unit(h))
}

/// The colour histogram of one model input tensor (the normalisation undone).
pub fn histogram_of_tensor(tensor: &[f32], spec: &ModelSpec) -> [f32; BINS] {
    let n = tensor.len() / 3;
    let px = |c: usize, x: f32| ((x * spec.std[c] + spec.mean[c]) * 255.0).clamp(0.0, 255.0);
    match spec.layout {
        Layout::Nchw => {
            let (r, rest) = tensor.split_at(n);
            let (g, b) = rest.split_at(n);
            histogram((0..n).map(|i| [px(0, r[i]), px(1, g[i]), px(2, b[i])]))
        }
        Layout::Nhwc => {
            histogram(tensor.chunks_exact(3).map(|p| [px(0, p[0]), px(1, p[1]), px(2, p[2])]))
        }
    }
}

/// The stored descriptor: unit CNN embedding `cnn` and unit histogram `hist` combined with
/// weight `w` into one unit vector.
pub fn compose(cnn: &[f32], hist: &[f32], w: f32, out: &mut Vec<f32>) {
    let s = 1.0 / (1.0 + w * w).sqrt();
    out.extend(cnn.iter().map(|x| x * s));
    out.extend(hist.iter().map(|x| x * w * s));
}

/// A query vector that ranks a stored descriptor (index weight `w_index`) by
/// `(c·c' + w^2 h·h') / (1 + w^2)`, the cosine it would have had with weight `w` — so a
/// query changes how much colour counts without re-indexing. `v` is a stored descriptor
/// (`cnn_dim` CNN values, then the histogram). `w = w_index` gives `v` back.
pub fn reweight(v: &[f32], cnn_dim: usize, w_index: f32, w: f32) -> Vec<f32> {
    if w_index <= 0.0 || v.len() <= cnn_dim || (w - w_index).abs() < 1e-6 {
        return v.to_vec();
    }
    let n = (1.0 + w_index * w_index).sqrt();
    // v = [c, w_i h] / n: the parts back are c = v_head * n, h = v_tail * n / w_i.
    let head = n / (1.0 + w * w) * n;
    let tail = n / (1.0 + w * w) * (w * w / w_index) * n / w_index;
    let (c, h) = v.split_at(cnn_dim);
    c.iter().map(|x| x * head).chain(h.iter().map(|x| x * tail)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(rgb: [f32; 3], n: usize) -> Vec<[f32; 3]> {
        vec![rgb; n]
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn background_white_is_ignored_but_a_white_garment_is_not() {
        let mut red_on_white = solid([255.0, 255.0, 255.0], 900);
        red_on_white.extend(solid([200.0, 20.0, 30.0], 100));
        let red = histogram(solid([200.0, 20.0, 30.0], 10).into_iter());
        let h = histogram(red_on_white.into_iter());
        assert!((dot(&h, &red) - 1.0).abs() < 1e-5, "the white background counted");
        let white = histogram(solid([250.0, 250.0, 250.0], 50).into_iter());
        assert!((dot(&white, &white) - 1.0).abs() < 1e-5, "a white garment has a colour");
        assert!(dot(&white, &red).abs() < 1e-6);
    }

    #[test]
    fn colours_land_in_distinct_bins_and_shades_stay_close() {
        let red = histogram(solid([200.0, 20.0, 30.0], 10).into_iter());
        let blue = histogram(solid([20.0, 40.0, 200.0], 10).into_iter());
        let black = histogram(solid([10.0, 10.0, 12.0], 10).into_iter());
        let dark_red = histogram(solid([190.0, 25.0, 35.0], 10).into_iter());
        assert_eq!(dot(&red, &blue), 0.0);
        assert_eq!(dot(&red, &black), 0.0);
        assert!((dot(&red, &dark_red) - 1.0).abs() < 1e-5);
        for rgb in [[255.0, 0.0, 0.0], [0.0, 255.0, 0.0], [0.0, 0.0, 255.0], [0.0; 3], [128.0; 3]] {
            assert!(bin(rgb[0], rgb[1], rgb[2]) < BINS);
        }
    }

    fn spec() -> ModelSpec {
        ModelSpec {
            name: "t".into(),
            file: "t.onnx".into(),
            input: "input".into(),
            output: "output".into(),
            layout: Layout::Nchw,
            size: 1,
            resize: crate::model::ResizeMode::Pad,
            mean: [127.0 / 255.0; 3],
            std: [128.0 / 255.0; 3],
            dim: 1,
            query_size: None,
            heads: None,
            mask: None,
            close_match: None,
        }
    }

    #[test]
    fn tensor_histogram_undoes_the_normalisation() {
        let spec = spec();
        // Two pixels, NCHW: one red, one white.
        let px = [[200.0f32, 20.0, 30.0], [255.0, 255.0, 255.0]];
        let mut t = vec![0f32; 6];
        for (i, p) in px.iter().enumerate() {
            for c in 0..3 {
                t[c * 2 + i] = (p[c] / 255.0 - spec.mean[c]) / spec.std[c];
            }
        }
        let h = histogram_of_tensor(&t, &spec);
        let red = histogram(solid(px[0], 1).into_iter());
        assert!((dot(&h, &red) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn a_masked_histogram_is_the_garments_white_included_and_not_the_floors() {
        let spec = ModelSpec { layout: Layout::Nhwc, mean: [0.0; 3], std: [1.0; 3], ..spec() };
        // A 4x4 square: a white shirt on the left half, a brown floor on the right; the mask
        // is 2x2 cells, sure of the left column only.
        let (white, brown) = ([250.0f32, 250.0, 250.0], [120.0f32, 70.0, 30.0]);
        let t: Vec<f32> = (0..16)
            .flat_map(|i| if i % 4 < 2 { white } else { brown })
            .map(|c| c / 255.0)
            .collect();
        let mask = [0.9, 0.1, 0.8, 0.4];
        let h = histogram_of_masked(&t, &spec, 4, &mask, 2, 2).unwrap();
        assert!((dot(&h, &histogram(solid(white, 3).into_iter())) - 1.0).abs() < 1e-4);
        // The studio rule would have kept the floor alone.
        assert!(
            dot(&histogram(solid(brown, 1).into_iter()), &histogram_of_tensor(&t, &spec)) > 0.99
        );
        // Nothing sure, or a mask that does not fit: no garment colour.
        assert!(histogram_of_masked(&t, &spec, 4, &[0.2; 4], 2, 2).is_none());
        assert!(histogram_of_masked(&t, &spec, 4, &[0.9; 3], 1, 3).is_some());
        assert!(histogram_of_masked(&t, &spec, 4, &[0.9; 3], 2, 2).is_none());
        assert!(histogram_of_masked(&t[1..], &spec, 4, &mask, 2, 2).is_none());
    }

    #[test]
    fn reweighting_a_query_ranks_as_an_index_built_with_that_weight() {
        // Unit parts, made up but fixed.
        let unit = |v: Vec<f32>| {
            let n = dot(&v, &v).sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<_>>()
        };
        let cs = [unit(vec![1.0, 0.2, 0.1]), unit(vec![0.3, 1.0, 0.0]), unit(vec![0.9, 0.1, 0.5])];
        let hs = [unit(vec![0.1, 1.0]), unit(vec![1.0, 0.1]), unit(vec![0.5, 0.5])];
        let stored = |w: f32, i: usize| {
            let mut v = Vec::new();
            compose(&cs[i], &hs[i], w, &mut v);
            v
        };
        let (w_index, w) = (0.5, 1.2);
        for q in 0..3 {
            let query = reweight(&stored(w_index, q), 3, w_index, w);
            for i in 0..3 {
                let got = dot(&query, &stored(w_index, i));
                let want = dot(&stored(w, q), &stored(w, i));
                assert!((got - want).abs() < 1e-5, "query {q} item {i}: {got} vs {want}");
            }
        }
        // Weight 0: the CNN cosine alone.
        let query = reweight(&stored(w_index, 0), 3, w_index, 0.0);
        assert!((dot(&query, &stored(w_index, 1)) - dot(&cs[0], &cs[1])).abs() < 1e-5);
        assert_eq!(reweight(&stored(w_index, 2), 3, w_index, w_index), stored(w_index, 2));
    }
}
