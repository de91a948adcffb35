//! Scans over a matrix of rows: every row, listed rows, f16 or i8 copies re-ranked exactly
//! in f32, and batched queries through SGEMM.

use half::f16;
use rayon::prelude::*;

use super::{Int8Rows, Scored, TopK, dot, dot_f16, dot_i8};

/// Rows per parallel task: large enough that scheduling costs nothing.
pub(super) const CHUNK_ROWS: usize = 4096;

/// How many listed rows ahead [`scan_rows`] starts loading.
const PREFETCH_AHEAD: usize = 4;

/// Ask the CPU to start loading `data` into cache; a hint with no effect on results.
#[inline]
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = data.as_ptr().cast::<i8>();
        for offset in (0..std::mem::size_of_val(data)).step_by(64) {
            // SAFETY: a prefetch never faults and reads nothing; the address is inside `data`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// The `depth` best rows of `rows` (row-major, `dim` values each) by `score(row, values)`
/// among those `keep` accepts; in parallel over row blocks when there are many.
fn scan<T, S, F>(rows: &[T], dim: usize, depth: usize, score: S, keep: F) -> TopK
where
    T: Sync,
    S: Fn(usize, &[T]) -> f32 + Sync,
    F: Fn(usize) -> bool + Sync,
{
    let block_scan = |start: usize, block: &[T]| {
        let mut top = TopK::new(depth);
        for (i, row) in block.chunks_exact(dim).enumerate() {
            let r = start + i;
            if keep(r) {
                let s = score(r, row);
                // Below the floor (-inf until the heap is full) a push would change nothing.
                if s > top.floor() {
                    top.push(Scored { row: r, score: s });
                }
            }
        }
        top
    };
    if rows.len() / dim <= CHUNK_ROWS {
        return block_scan(0, rows);
    }
    rows.par_chunks(CHUNK_ROWS * dim)
        .enumerate()
        .map(|(c, block)| block_scan(c * CHUNK_ROWS, block))
        .reduce(|| TopK::new(depth), TopK::merge)
}

/// Exact top-k of `query` against every row of `matrix` that `keep` accepts.
pub fn top_k<F>(matrix: &[f32], dim: usize, query: &[f32], k: usize, keep: F) -> Vec<Scored>
where
    F: Fn(usize) -> bool + Sync,
{
    if dim == 0 || k == 0 {
        return Vec::new();
    }
    scan(matrix, dim, k, |_, row| dot(row, query), keep).into_sorted()
}

/// The `depth` best of the listed `rows` by `score(row)`; in parallel over blocks of the
/// list when it is long. Time in proportion to the list, which is what a selective filter
/// needs.
///
/// Listed rows are scattered through memory, so each would stall on its load: `warm(row)`
/// asks for a row [`PREFETCH_AHEAD`] places ahead of the one being scored.
fn scan_rows<S, W>(rows: &[usize], depth: usize, score: S, warm: W) -> TopK
where
    S: Fn(usize) -> f32 + Sync,
    W: Fn(usize) + Sync,
{
    let block = |part: &[usize]| {
        let mut top = TopK::new(depth);
        for (i, &r) in part.iter().enumerate() {
            if let Some(&ahead) = part.get(i + PREFETCH_AHEAD) {
                warm(ahead);
            }
            top.push(Scored { row: r, score: score(r) });
        }
        top
    };
    if rows.len() <= CHUNK_ROWS {
        return block(rows);
    }
    rows.par_chunks(CHUNK_ROWS).map(block).reduce(|| TopK::new(depth), TopK::merge)
}

/// Exact top-k among the listed `rows` of `matrix` only.
pub fn top_k_rows(
    matrix: &[f32],
    dim: usize,
    query: &[f32],
    k: usize,
    rows: &[usize],
) -> Vec<Scored> {
    if dim == 0 || k == 0 {
        return Vec::new();
    }
    let row = |r: usize| &matrix[r * dim..(r + 1) * dim];
    scan_rows(rows, k, |r| dot(row(r), query), |r| prefetch(row(r))).into_sorted()
}

/// [`top_k_rows`] reading the i8 codes first, then re-ranking exactly in f32.
pub fn top_k_rows_i8(
    matrix: &[f32],
    q8: &Int8Rows,
    dim: usize,
    query: &[f32],
    k: usize,
    rows: &[usize],
) -> Vec<Scored> {
    if dim == 0 || k == 0 {
        return Vec::new();
    }
    let approx = |r: usize| q8.scales[r] * dot_i8(&q8.codes[r * dim..(r + 1) * dim], query);
    let warm = |r: usize| prefetch(&q8.codes[r * dim..(r + 1) * dim]);
    rerank(matrix, dim, query, k, scan_rows(rows, rerank_depth(k), approx, warm))
}

/// The best k of `candidates`, scored again exactly in f32.
fn rerank(matrix: &[f32], dim: usize, query: &[f32], k: usize, candidates: TopK) -> Vec<Scored> {
    let mut exact = TopK::new(k);
    for c in candidates.into_unsorted() {
        let r = c.row;
        exact.push(Scored { row: r, score: dot(&matrix[r * dim..(r + 1) * dim], query) });
    }
    exact.into_sorted()
}

/// Candidates an f16 scan keeps for exact re-ranking: generous enough that rounding
/// (about 1e-3 on a cosine) cannot push a true top-k item out.
pub fn rerank_depth(k: usize) -> usize {
    (4 * k).max(k + 32)
}

/// Top-k by scanning a compact copy of the matrix (less memory traffic), then
/// re-scoring the best [`rerank_depth`] candidates exactly in f32. `approx(row, codes)`
/// scores one row of `codes`, which holds `dim` codes per row.
fn top_k_rerank<T, A, F>(
    matrix: &[f32],
    codes: &[T],
    dim: usize,
    query: &[f32],
    k: usize,
    approx: A,
    keep: F,
) -> Vec<Scored>
where
    T: Sync,
    A: Fn(usize, &[T]) -> f32 + Sync,
    F: Fn(usize) -> bool + Sync,
{
    if dim == 0 || k == 0 {
        return Vec::new();
    }
    rerank(matrix, dim, query, k, scan(codes, dim, rerank_depth(k), approx, keep))
}

/// [`top_k_rerank`] over a half-precision copy.
pub fn top_k_f16<F>(
    matrix: &[f32],
    half: &[f16],
    dim: usize,
    query: &[f32],
    k: usize,
    keep: F,
) -> Vec<Scored>
where
    F: Fn(usize) -> bool + Sync,
{
    top_k_rerank(matrix, half, dim, query, k, |_, row| dot_f16(row, query), keep)
}

/// [`top_k_rerank`] over i8 codes (a quarter of the f32 memory traffic).
pub fn top_k_i8<F>(
    matrix: &[f32],
    q8: &Int8Rows,
    dim: usize,
    query: &[f32],
    k: usize,
    keep: F,
) -> Vec<Scored>
where
    F: Fn(usize) -> bool + Sync,
{
    top_k_rerank(matrix, &q8.codes, dim, query, k, |r, row| q8.scales[r] * dot_i8(row, query), keep)
}

/// Similarity of each of `nq` queries with every row: an `nq x rows` row-major matrix.
pub fn scores_batch(matrix: &[f32], dim: usize, queries: &[f32], nq: usize) -> Vec<f32> {
    let rows = matrix.len() / dim;
    let mut out = vec![0.0f32; nq * rows];
    if rows == 0 || nq == 0 {
        return out;
    }
    // SAFETY: the strides describe exactly the buffers passed: queries is nq x dim,
    // matrix is rows x dim read as its transpose (dim x rows), out is nq x rows.
    unsafe {
        matrixmultiply::sgemm(
            nq,
            dim,
            rows,
            1.0,
            queries.as_ptr(),
            dim as isize,
            1,
            matrix.as_ptr(),
            1,
            dim as isize,
            0.0,
            out.as_mut_ptr(),
            rows as isize,
            1,
        );
    }
    out
}
