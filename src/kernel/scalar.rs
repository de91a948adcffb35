//! The reference kernels: plain loops that define what the fast ones compute, and that
//! the tests compare them with.

use half::f16;

use super::Scored;
use super::topk::better;

/// Reference dot product, the definition the fast kernels are checked against.
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Reference dot product of an f16 row with an f32 query.
pub fn dot_f16_scalar(a: &[f16], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x.to_f32() * y).sum()
}

/// Reference dot product of an i8 row with an f32 query (without the row's scale).
pub fn dot_i8_scalar(a: &[i8], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| f32::from(*x) * y).sum()
}

/// Reference top-k: score everything with the scalar dot, sort, cut.
pub fn top_k_scalar<F: Fn(usize) -> bool>(
    matrix: &[f32],
    dim: usize,
    query: &[f32],
    k: usize,
    keep: F,
) -> Vec<Scored> {
    let mut all: Vec<Scored> = matrix
        .chunks_exact(dim)
        .enumerate()
        .filter(|(r, _)| keep(*r))
        .map(|(row, v)| Scored { row, score: dot_scalar(v, query) })
        .collect();
    all.sort_by(better);
    all.truncate(k);
    all
}
