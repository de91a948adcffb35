//! Where the garments are in a photo.
//!
//! `locate` (this file): the fashion model's garment mask (a probability per cell of the
//! padded input square) turned into a square crop of the photo around the garment, so
//! that a snapshot is searched by its garment and not by its floor. `find`: every garment
//! of an outfit, each with its [`Kind`], from the garment finder's cells. `kind`: the
//! kinds, one table.
//!
//! The mask head was trained on catalogue garments pasted onto home-like backgrounds
//! (their masks known from the white studio background), so it tells a garment from a
//! bed, a rug or a floor. The crop is square and keeps a margin of context, as the
//! composites the model learnt from had; a garment filling most of the photo gets no crop.

mod find;
mod kind;

pub use find::{Found, find};
pub use kind::Kind;

use crate::preprocess::Crop;

/// A cell this sure is garment (low: an uncertain sleeve belongs to the garment; a box too
/// large only costs a little background, one too small cuts the garment).
pub const THRESHOLD: f32 = 0.3;
/// Context kept on each side of the garment, as a share of its larger side.
pub const MARGIN: f32 = 0.12;
/// A crop covering at least this share of the photo is not worth it: the photo is searched
/// as before (centre square).
pub const MAX_AREA: f64 = 0.85;
/// A garment whose square covers less of the photo than this is searched by its own view
/// alone; a larger one by its view and the whole photo's together (BENCHMARKS.md).
pub const ALONE_BELOW: f64 = 0.4;

/// The garment's square crop in a `width x height` photo, from a `rows x cols` mask over
/// the photo padded (centred, long side fitted) into a square; `None` when no cell is sure
/// enough or the garment fills the photo anyway.
pub fn locate(mask: &[f32], rows: usize, cols: usize, width: u32, height: u32) -> Option<Crop> {
    if rows == 0 || cols == 0 || mask.len() != rows * cols || width == 0 || height == 0 {
        return None;
    }
    let (c0, r0, c1, r1) = largest_region(mask, rows, cols)?;
    let (x0, y0, x1, y1) = cells_in_photo((c0, r0, c1, r1), rows, cols, width, height)?;
    let sq = square_around((x0, y0, x1, y1), width, height);
    if f64::from(sq.w) * f64::from(sq.h) >= MAX_AREA * f64::from(width) * f64::from(height) {
        return None;
    }
    Some(sq)
}

/// Cells `(col0, row0, col1, row1)` (inclusive) of a `rows x cols` grid over the photo
/// padded (centred, long side fitted) into a square, as photo pixels `(x0, y0, x1, y1)`:
/// the padding undone, clamped to the photo; `None` when nothing of it is in the photo.
fn cells_in_photo(
    (c0, r0, c1, r1): (usize, usize, usize, usize),
    rows: usize,
    cols: usize,
    width: u32,
    height: u32,
) -> Option<(f64, f64, f64, f64)> {
    let long = f64::from(width.max(height));
    let to_x = |f: f64| (f * long - (long - f64::from(width)) / 2.0).clamp(0.0, f64::from(width));
    let to_y = |f: f64| (f * long - (long - f64::from(height)) / 2.0).clamp(0.0, f64::from(height));
    let (x0, x1) = (to_x(c0 as f64 / cols as f64), to_x((c1 + 1) as f64 / cols as f64));
    let (y0, y1) = (to_y(r0 as f64 / rows as f64), to_y((r1 + 1) as f64 / rows as f64));
    (x1 > x0 && y1 > y0).then_some((x0, y0, x1, y1))
}

/// The square crop searched for a garment spanning `(x0, y0, x1, y1)`: its larger side
/// plus [`MARGIN`] on each side (at most the photo's short side), centred on it and moved
/// inside the photo where it would stick out.
pub fn square_around((x0, y0, x1, y1): (f64, f64, f64, f64), width: u32, height: u32) -> Crop {
    let short = f64::from(width.min(height));
    let side = ((x1 - x0).max(y1 - y0) * (1.0 + 2.0 * f64::from(MARGIN))).min(short).max(1.0);
    let x = ((x0 + x1 - side) / 2.0).clamp(0.0, (f64::from(width) - side).max(0.0));
    let y = ((y0 + y1 - side) / 2.0).clamp(0.0, (f64::from(height) - side).max(0.0));
    let s = side.round().max(1.0) as u32;
    Crop { x: x.round() as u32, y: y.round() as u32, w: s, h: s }
}

/// Bounding cells `(col0, row0, col1, row1)` of the 4-connected region of sure cells
/// holding the most garment probability.
fn largest_region(mask: &[f32], rows: usize, cols: usize) -> Option<(usize, usize, usize, usize)> {
    let mut seen = vec![false; mask.len()];
    let mut best: Option<(f32, (usize, usize, usize, usize))> = None;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if seen[start] || mask[start].is_nan() || mask[start] < THRESHOLD {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut mass, mut bbox) = (0.0, (cols, rows, 0, 0));
        while let Some(i) = stack.pop() {
            let (r, c) = (i / cols, i % cols);
            mass += mask[i];
            bbox = (bbox.0.min(c), bbox.1.min(r), bbox.2.max(c), bbox.3.max(r));
            let mut visit = |j: usize| {
                if !seen[j] && mask[j] >= THRESHOLD {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if c > 0 {
                visit(i - 1);
            }
            if c + 1 < cols {
                visit(i + 1);
            }
            if r > 0 {
                visit(i - cols);
            }
            if r + 1 < rows {
                visit(i + cols);
            }
        }
        if best.is_none_or(|(m, _)| mass > m) {
            best = Some((mass, bbox));
        }
    }
    best.map(|(_, b)| b)
}

/// Intersection over union of two boxes.
pub fn iou(a: Crop, b: Crop) -> f64 {
    let ix = (a.x + a.w).min(b.x + b.w).saturating_sub(a.x.max(b.x));
    let iy = (a.y + a.h).min(b.y + b.h).saturating_sub(a.y.max(b.y));
    let inter = f64::from(ix) * f64::from(iy);
    let union = f64::from(a.w) * f64::from(a.h) + f64::from(b.w) * f64::from(b.h) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: usize, cols: usize, on: &[(usize, usize)]) -> Vec<f32> {
        let mut m = vec![0.05; rows * cols];
        for &(r, c) in on {
            m[r * cols + c] = 0.9;
        }
        m
    }

    #[test]
    fn a_small_garment_gets_a_square_crop_around_it() {
        // 10x10 cells over a 200x200 photo: garment in cells rows 6..=7, cols 2..=3.
        let m = grid(10, 10, &[(6, 2), (6, 3), (7, 2), (7, 3)]);
        let c = locate(&m, 10, 10, 200, 200).unwrap();
        assert_eq!(c.w, c.h);
        // The garment spans x 40..80, y 120..160 (40 px): a 40 * 1.24 ≈ 50 px square around it.
        assert_eq!(c.w, 50);
        assert!(c.x <= 40 && c.x + c.w >= 80 && c.y <= 120 && c.y + c.h >= 160, "{c:?}");
    }

    #[test]
    fn padding_is_undone_for_portrait_photos() {
        // A 100x200 photo padded into a square: columns 0..2.5 and 7.5..10 are white bars.
        let m = grid(10, 10, &[(1, 4), (1, 5), (2, 4), (2, 5)]);
        let c = locate(&m, 10, 10, 100, 200).unwrap();
        // Cells 4..=5 are x 80..120 of the square, i.e. 30..70 of the photo.
        assert!(c.x <= 30 && c.x + c.w >= 70 && c.x + c.w <= 100, "{c:?}");
        assert!(c.y <= 20 && c.y + c.h >= 60, "{c:?}");
    }

    #[test]
    fn the_largest_region_wins_and_noise_is_ignored() {
        let mut on = vec![(0, 9)];
        for r in 4..8 {
            for c in 3..7 {
                on.push((r, c));
            }
        }
        let m = grid(10, 10, &on);
        let c = locate(&m, 10, 10, 100, 100).unwrap();
        assert!(c.x >= 20 && c.x + c.w <= 80, "the lone cell in the corner is left out: {c:?}");
    }

    #[test]
    fn iou_of_boxes() {
        let a = Crop { x: 0, y: 0, w: 10, h: 10 };
        assert_eq!(iou(a, a), 1.0);
        assert_eq!(iou(a, Crop { x: 10, y: 0, w: 10, h: 10 }), 0.0);
        let half = iou(a, Crop { x: 5, y: 0, w: 10, h: 10 });
        assert!((half - 50.0 / 150.0).abs() < 1e-12);
    }

    #[test]
    fn nothing_sure_or_everything_garment_gives_no_crop() {
        assert_eq!(locate(&grid(10, 10, &[]), 10, 10, 100, 100), None);
        let all: Vec<(usize, usize)> = (0..10).flat_map(|r| (0..10).map(move |c| (r, c))).collect();
        assert_eq!(locate(&grid(10, 10, &all), 10, 10, 100, 100), None);
        assert_eq!(locate(&[0.9; 3], 2, 2, 10, 10), None, "wrong mask size");
    }
}
