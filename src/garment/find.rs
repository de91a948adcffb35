//! Every garment of a photo from the garment finder's cells: for each cell of the photo
//! padded into a square, a probability per kind (channel 0: no garment). Cells that are
//! garment take their likeliest kind; the regions of one kind are the garments, pieces of
//! one garment (the two shoes of a pair, a bag strap) joined when they nearly touch,
//! crumbs dropped.

use super::{Kind, cells_in_photo};
use crate::preprocess::Crop;

/// A cell is garment when the finder gives "no garment" less than this.
pub const GARMENT: f32 = 0.5;
/// A garment's cells must hold at least this much of its kind's probability in all (a
/// shoe in a full-length outfit photo covers one or two cells).
pub const MIN_MASS: f32 = 1.2;
/// Regions of one kind this far apart or closer (in cells) are one garment.
const JOIN_GAP: usize = 1;
/// A region of a kind with less than this share of the kind's largest region's mass is a
/// crumb of it (a sleeve taken apart, a print), not a garment of its own.
const CRUMB: f32 = 0.5;
/// A garment beside a larger one must be this sure of its kind (a dress's hem taken for
/// a skirt, a floor's pattern for a bag are not); the largest needs only [`MIN_MASS`], so
/// a snapshot of one garment is found as one.
pub const MIN_CONFIDENCE: f32 = 0.6;

/// A garment found in a photo.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub kind: Kind,
    /// Mean probability of its kind over its cells.
    pub confidence: f32,
    /// Its box in pixels of the photo.
    pub region: Crop,
}

#[derive(Debug, Clone)]
struct Region {
    kind: usize,
    mass: f32,
    cells: usize,
    bbox: (usize, usize, usize, usize),
}

/// The garments in a `width x height` photo from `probs`, `channels x rows x cols`
/// (channel 0 "none", then [`Kind::ALL`]), largest first; none when the shapes disagree.
pub fn find(
    probs: &[f32],
    channels: usize,
    rows: usize,
    cols: usize,
    width: u32,
    height: u32,
) -> Vec<Found> {
    let n = rows * cols;
    if channels != Kind::ALL.len() + 1 || n == 0 || probs.len() != channels * n {
        return Vec::new();
    }
    // Each cell's kind (0: none) and that kind's probability.
    let mut label = vec![0usize; n];
    let mut prob = vec![0f32; n];
    for i in 0..n {
        if probs[i].is_nan() || probs[i] >= GARMENT {
            continue;
        }
        let (k, p) = (1..channels)
            .map(|k| (k, probs[k * n + i]))
            .filter(|(_, p)| p.is_finite())
            .fold((0, f32::MIN), |best, kp| if kp.1 > best.1 { kp } else { best });
        if k > 0 {
            label[i] = k;
            prob[i] = p;
        }
    }
    let mut regions = components(&label, &prob, rows, cols);
    join_near(&mut regions);
    let largest = |k: usize, rs: &[Region]| {
        rs.iter().filter(|r| r.kind == k).map(|r| r.mass).fold(0.0, f32::max)
    };
    let biggest: Vec<f32> = (0..channels).map(|k| largest(k, &regions)).collect();
    regions.retain(|r| r.mass >= MIN_MASS && r.mass >= CRUMB * biggest[r.kind]);
    regions.sort_by(|a, b| b.cells.cmp(&a.cells).then(b.mass.total_cmp(&a.mass)));
    let mut first = true;
    regions.retain(|r| std::mem::take(&mut first) || r.mass / r.cells as f32 >= MIN_CONFIDENCE);
    regions
        .into_iter()
        .filter_map(|r| {
            let (x0, y0, x1, y1) = cells_in_photo(r.bbox, rows, cols, width, height)?;
            let (x, y) = (x0.floor() as u32, y0.floor() as u32);
            let region = Crop {
                x,
                y,
                w: (x1.ceil() as u32).saturating_sub(x).max(1),
                h: (y1.ceil() as u32).saturating_sub(y).max(1),
            };
            Some(Found { kind: Kind::ALL[r.kind - 1], confidence: r.mass / r.cells as f32, region })
        })
        .collect()
}

/// The 4-connected regions of cells sharing a kind.
fn components(label: &[usize], prob: &[f32], rows: usize, cols: usize) -> Vec<Region> {
    let mut seen = vec![false; label.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..label.len() {
        if seen[start] || label[start] == 0 {
            continue;
        }
        let kind = label[start];
        seen[start] = true;
        stack.push(start);
        let mut r = Region { kind, mass: 0.0, cells: 0, bbox: (cols, rows, 0, 0) };
        while let Some(i) = stack.pop() {
            let (row, col) = (i / cols, i % cols);
            r.mass += prob[i];
            r.cells += 1;
            r.bbox = (r.bbox.0.min(col), r.bbox.1.min(row), r.bbox.2.max(col), r.bbox.3.max(row));
            let neighbours = [
                (col > 0).then(|| i - 1),
                (col + 1 < cols).then(|| i + 1),
                (row > 0).then(|| i - cols),
                (row + 1 < rows).then(|| i + cols),
            ];
            for j in neighbours.into_iter().flatten() {
                if !seen[j] && label[j] == kind {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        out.push(r);
    }
    out
}

/// Joins regions of one kind whose boxes are at most [`JOIN_GAP`] cells apart, until
/// none are.
fn join_near(regions: &mut Vec<Region>) {
    let gap = |a: (usize, usize), b: (usize, usize)| {
        // Cells strictly between two inclusive spans (0 when they touch or overlap).
        if a.1 < b.0 {
            b.0 - a.1 - 1
        } else if b.1 < a.0 {
            a.0 - b.1 - 1
        } else {
            0
        }
    };
    loop {
        let mut joined = false;
        'pairs: for i in 0..regions.len() {
            for j in i + 1..regions.len() {
                let (a, b) = (&regions[i], &regions[j]);
                if a.kind == b.kind
                    && gap((a.bbox.0, a.bbox.2), (b.bbox.0, b.bbox.2)) <= JOIN_GAP
                    && gap((a.bbox.1, a.bbox.3), (b.bbox.1, b.bbox.3)) <= JOIN_GAP
                {
                    let b = regions.swap_remove(j);
                    let a = &mut regions[i];
                    a.mass += b.mass;
                    a.cells += b.cells;
                    a.bbox = (
                        a.bbox.0.min(b.bbox.0),
                        a.bbox.1.min(b.bbox.1),
                        a.bbox.2.max(b.bbox.2),
                        a.bbox.3.max(b.bbox.3),
                    );
                    joined = true;
                    break 'pairs;
                }
            }
        }
        if !joined {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8 channels over `rows x cols`: every cell "none" but those given as (row, col, kind).
    fn cells(rows: usize, cols: usize, on: &[(usize, usize, Kind)]) -> Vec<f32> {
        let n = rows * cols;
        let mut p = vec![0.0; 8 * n];
        for i in 0..n {
            p[i] = 0.95;
            p[n + i] = 0.05;
        }
        for &(r, c, k) in on {
            let i = r * cols + c;
            let ch = Kind::ALL.iter().position(|&x| x == k).unwrap() + 1;
            for channel in 0..8 {
                p[channel * n + i] = 0.0;
            }
            p[i] = 0.1;
            p[ch * n + i] = 0.9;
        }
        p
    }

    fn block(r0: usize, r1: usize, c0: usize, c1: usize, k: Kind) -> Vec<(usize, usize, Kind)> {
        (r0..=r1).flat_map(|r| (c0..=c1).map(move |c| (r, c, k))).collect()
    }

    #[test]
    fn an_outfit_gives_one_box_per_garment_largest_first() {
        // 16x16 cells over a 256x256 photo: a top, a bottom below it, two shoes a cell apart.
        let mut on = block(2, 6, 5, 10, Kind::Top);
        on.extend(block(7, 12, 6, 9, Kind::Bottom));
        on.extend(block(14, 14, 5, 6, Kind::Shoes));
        on.extend(block(14, 14, 8, 9, Kind::Shoes));
        let found = find(&cells(16, 16, &on), 8, 16, 16, 256, 256);
        let kinds: Vec<Kind> = found.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [Kind::Top, Kind::Bottom, Kind::Shoes]);
        assert_eq!(found[0].region, Crop { x: 80, y: 32, w: 96, h: 80 });
        // The pair of shoes is one garment spanning both.
        assert_eq!(found[2].region, Crop { x: 80, y: 224, w: 80, h: 16 });
        assert!(found.iter().all(|f| (f.confidence - 0.9).abs() < 1e-5));
    }

    #[test]
    fn crumbs_and_lone_cells_are_not_garments() {
        let mut on = block(2, 9, 2, 9, Kind::Dress);
        // Two cells far away: enough mass, but a crumb beside the dress's.
        on.extend([(12, 13, Kind::Dress), (12, 14, Kind::Dress)]);
        on.push((0, 15, Kind::Hat)); // one unsure cell: under MIN_MASS
        let found = find(&cells(16, 16, &on), 8, 16, 16, 256, 256);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, Kind::Dress);
    }

    #[test]
    fn boxes_are_in_photo_pixels_with_the_padding_undone() {
        // A 128x256 portrait photo padded to 256x256: columns 0..4 and 12..16 are padding.
        let on = block(4, 7, 5, 8, Kind::Bag);
        let found = find(&cells(16, 16, &on), 8, 16, 16, 128, 256);
        assert_eq!(found[0].region, Crop { x: 16, y: 64, w: 64, h: 64 });
    }

    #[test]
    fn nothing_found_in_an_empty_photo_or_with_wrong_shapes() {
        assert!(find(&cells(16, 16, &[]), 8, 16, 16, 256, 256).is_empty());
        assert!(find(&[0.5; 10], 8, 16, 16, 256, 256).is_empty());
        assert!(find(&cells(4, 4, &block(0, 3, 0, 3, Kind::Top)), 7, 4, 4, 64, 64).is_empty());
    }
}
