//! Exact nearest-neighbour kernels over a dense row-major matrix of unit vectors.
//!
//! Cosine similarity of normalised vectors is their dot product. The scan is memory-bound
//! (44k x 1280 f32 is 225 MB), so the hand-written part is small: an AVX2/FMA dot product
//! with four independent accumulators, checked against the plain scalar reference
//! [`dot_scalar`], and a bounded heap for top-k. Batched queries (evaluation) go through a
//! blocked SGEMM from `matrixmultiply` instead.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use half::f16;

use rayon::prelude::*;

/// One result of a scan: row number and cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub row: usize,
    pub score: f32,
}

/// Heap order: the *worst* hit on top, so it can be evicted. Higher score is better; on
/// equal scores the lower row wins, which keeps results deterministic.
#[derive(PartialEq)]
struct Worst(Scored);
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        // The max-heap's top is the hit that ranks last.
        better(&self.0, &other.0)
    }
}

/// `Less` when `a` ranks before `b`.
fn better(a: &Scored, b: &Scored) -> Ordering {
    b.score.total_cmp(&a.score).then(a.row.cmp(&b.row))
}

/// Keeps the k best of a stream.
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    #[inline]
    pub fn push(&mut self, s: Scored) {
        if self.k == 0 || !s.score.is_finite() {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Worst(s));
        } else if let Some(worst) = self.heap.peek()
            && better(&s, &worst.0) == Ordering::Less
        {
            self.heap.pop();
            self.heap.push(Worst(s));
        }
    }

    /// Threshold a new score must beat to enter (the current k-th), if full.
    #[inline]
    fn floor(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.score)
        }
    }

    pub fn merge(mut self, other: TopK) -> TopK {
        for w in other.heap {
            self.push(w.0);
        }
        self
    }

    /// Best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.heap.into_iter().map(|w| w.0).collect();
        v.sort_by(better);
        v
    }
}

/// Reference dot product, the definition the fast kernels are checked against.
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Dot product, AVX2/FMA when the CPU has it.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if simd::available() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { simd::dot_avx2(a, b) };
        }
    }
    dot_scalar(a, b)
}

/// Reference dot product of an f16 row with an f32 query.
pub fn dot_f16_scalar(a: &[f16], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x.to_f32() * y).sum()
}

/// Dot product of an f16 row with an f32 query, AVX2/FMA/F16C when available.
#[inline]
pub fn dot_f16(a: &[f16], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if simd::available_f16() {
            // SAFETY: the CPU supports AVX2, FMA and F16C (checked just above).
            return unsafe { simd::dot_f16_avx2(a, b) };
        }
    }
    dot_f16_scalar(a, b)
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }

    /// Sum of the eight lanes.
    #[target_feature(enable = "avx2")]
    fn hsum(s: __m256) -> f32 {
        let q = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s));
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
        _mm_cvtss_f32(q)
    }

    pub fn available_f16() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| available() && is_x86_feature_detected!("f16c"))
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_avx2(a: &[half::f16], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr().cast::<u16>(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, slot) in acc.iter_mut().enumerate() {
                // SAFETY: i + 8 * j + 8 <= n; f16 is a transparent u16, 8 of them are 128 bits.
                let (x, y) = unsafe {
                    (
                        _mm256_cvtph_ps(_mm_loadu_si128(pa.add(i + 8 * j).cast())),
                        _mm256_loadu_ps(pb.add(i + 8 * j)),
                    )
                };
                *slot = _mm256_fmadd_ps(x, y, *slot);
            }
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: i + 8 <= n.
            let (x, y) = unsafe {
                (_mm256_cvtph_ps(_mm_loadu_si128(pa.add(i).cast())), _mm256_loadu_ps(pb.add(i)))
            };
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
        let mut total =
            hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
        while i < n {
            total += a[i].to_f32() * b[i];
            i += 1;
        }
        total
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_i8_avx2(a: &[i8], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: i + 16 <= n: 16 codes (128 bits) and 16 floats are in bounds.
            let (v, y0, y1) = unsafe {
                (
                    _mm_loadu_si128(pa.add(i).cast()),
                    _mm256_loadu_ps(pb.add(i)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                )
            };
            let lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
            let hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
            acc[0] = _mm256_fmadd_ps(lo, y0, acc[0]);
            acc[1] = _mm256_fmadd_ps(hi, y1, acc[1]);
            i += 16;
        }
        let mut total = hsum(_mm256_add_ps(acc[0], acc[1]));
        while i < n {
            total += f32::from(a[i]) * b[i];
            i += 1;
        }
        total
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // Four accumulators hide the FMA latency.
        while i + 32 <= n {
            for (j, slot) in acc.iter_mut().enumerate() {
                // SAFETY: i + 8 * j + 8 <= n, both slices hold n floats.
                let (x, y) = unsafe {
                    (_mm256_loadu_ps(pa.add(i + 8 * j)), _mm256_loadu_ps(pb.add(i + 8 * j)))
                };
                *slot = _mm256_fmadd_ps(x, y, *slot);
            }
            i += 32;
        }
        while i + 8 <= n {
            // SAFETY: i + 8 <= n.
            let (x, y) = unsafe { (_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i))) };
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
        let mut total =
            hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
        while i < n {
            total += a[i] * b[i];
            i += 1;
        }
        total
    }
}

/// Rows per parallel task: large enough that scheduling costs nothing.
const CHUNK_ROWS: usize = 4096;

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
                if s > top.floor() || top.heap.len() < depth {
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
    for c in candidates.heap {
        let r = c.0.row;
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

/// Rows quantised to i8 with one scale per row: `x ≈ scale * code`.
#[derive(Debug, Default, Clone)]
pub struct Int8Rows {
    pub codes: Vec<i8>,
    pub scales: Vec<f32>,
}

impl Int8Rows {
    /// Symmetric per-row quantisation: the largest magnitude of a row maps to 127.
    pub fn quantise(matrix: &[f32], dim: usize) -> Self {
        let mut out = Int8Rows { codes: Vec::with_capacity(matrix.len()), scales: Vec::new() };
        for row in matrix.chunks_exact(dim) {
            out.push(row);
        }
        out
    }

    /// Quantise one more row.
    pub fn push(&mut self, row: &[f32]) {
        let max = row.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        self.scales.push(scale);
        self.codes.extend(row.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8));
    }
}

/// Reference dot product of an i8 row with an f32 query (without the row's scale).
pub fn dot_i8_scalar(a: &[i8], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| f32::from(*x) * y).sum()
}

/// Dot product of an i8 row with an f32 query, AVX2/FMA when available.
#[inline]
pub fn dot_i8(a: &[i8], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if simd::available() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { simd::dot_i8_avx2(a, b) };
        }
    }
    dot_i8_scalar(a, b)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn simd_dot_matches_scalar_for_every_tail_length() {
        for n in [0, 1, 7, 8, 9, 31, 32, 33, 64, 100, 1280, 1283] {
            let a = pseudo_random(n, 1);
            let b = pseudo_random(n, 2);
            let (fast, slow) = (dot(&a, &b), dot_scalar(&a, &b));
            assert!((fast - slow).abs() <= 1e-4 * (1.0 + slow.abs()), "n={n}: {fast} vs {slow}");
        }
    }

    #[test]
    fn top_k_matches_scalar_reference_serial_and_parallel() {
        let dim = 37;
        for rows in [5, 100, 3 * CHUNK_ROWS + 17] {
            let m = pseudo_random(rows * dim, rows as u64);
            let q = pseudo_random(dim, 99);
            for k in [1, 5, 10] {
                let keep = |r: usize| r % 3 != 1;
                let fast = top_k(&m, dim, &q, k, keep);
                let slow = top_k_scalar(&m, dim, &q, k, keep);
                assert_eq!(fast.len(), slow.len());
                for (f, s) in fast.iter().zip(&slow) {
                    assert_eq!(f.row, s.row, "rows={rows} k={k}");
                    assert!((f.score - s.score).abs() < 1e-4);
                    assert!(keep(f.row));
                }
            }
        }
    }

    #[test]
    fn f16_dot_matches_its_scalar_reference() {
        for n in [0, 1, 7, 8, 9, 33, 1280, 1283] {
            let a: Vec<f16> = pseudo_random(n, 1).iter().map(|x| f16::from_f32(*x)).collect();
            let b = pseudo_random(n, 2);
            let (fast, slow) = (dot_f16(&a, &b), dot_f16_scalar(&a, &b));
            assert!((fast - slow).abs() <= 1e-4 * (1.0 + slow.abs()), "n={n}: {fast} vs {slow}");
        }
    }

    #[test]
    fn i8_dot_matches_its_scalar_reference() {
        for n in [0, 1, 15, 16, 17, 100, 1280, 1283] {
            let a: Vec<i8> =
                (0..n).map(|i| ((i * 37) % 255) as i32 - 127).map(|v| v as i8).collect();
            let b = pseudo_random(n, 3);
            let (fast, slow) = (dot_i8(&a, &b), dot_i8_scalar(&a, &b));
            assert!((fast - slow).abs() <= 1e-3 * (1.0 + slow.abs()), "n={n}: {fast} vs {slow}");
        }
    }

    #[test]
    fn i8_scan_with_rerank_equals_exact_search() {
        let dim = 64;
        for rows in [50, 3 * CHUNK_ROWS + 5] {
            let m = pseudo_random(rows * dim, 11 + rows as u64);
            let q8 = Int8Rows::quantise(&m, dim);
            for seed in 0..5 {
                let q = pseudo_random(dim, 200 + seed);
                for k in [1, 10] {
                    let fast = top_k_i8(&m, &q8, dim, &q, k, |_| true);
                    let slow = top_k_scalar(&m, dim, &q, k, |_| true);
                    let ids = |v: &[Scored]| v.iter().map(|s| s.row).collect::<Vec<_>>();
                    assert_eq!(ids(&fast), ids(&slow), "rows={rows} seed={seed} k={k}");
                }
            }
        }
    }

    #[test]
    fn f16_scan_with_rerank_equals_exact_search() {
        let dim = 64;
        for rows in [50, 3 * CHUNK_ROWS + 5] {
            let m = pseudo_random(rows * dim, 7 + rows as u64);
            let h: Vec<f16> = m.iter().map(|x| f16::from_f32(*x)).collect();
            for seed in 0..5 {
                let q = pseudo_random(dim, 100 + seed);
                for k in [1, 10] {
                    let keep = |r: usize| r % 5 != 2;
                    let fast = top_k_f16(&m, &h, dim, &q, k, keep);
                    let slow = top_k_scalar(&m, dim, &q, k, keep);
                    let ids = |v: &[Scored]| v.iter().map(|s| s.row).collect::<Vec<_>>();
                    assert_eq!(ids(&fast), ids(&slow), "rows={rows} seed={seed} k={k}");
                    for (f, s) in fast.iter().zip(&slow) {
                        assert!((f.score - s.score).abs() < 1e-4, "scores are the exact f32 ones");
                    }
                }
            }
        }
    }

    #[test]
    fn top_k_with_fewer_candidates_than_k_returns_all_of_them() {
        let m = pseudo_random(10 * 4, 3);
        let q = pseudo_random(4, 4);
        assert_eq!(
            top_k(&m, 4, &q, 5, |r| r == 7).iter().map(|s| s.row).collect::<Vec<_>>(),
            vec![7]
        );
        assert!(top_k(&m, 4, &q, 5, |_| false).is_empty());
        assert_eq!(top_k(&m, 4, &q, 50, |_| true).len(), 10);
    }

    #[test]
    fn ties_break_on_lower_row() {
        let m = vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let r: Vec<usize> = top_k(&m, 2, &[1.0, 0.0], 2, |_| true).iter().map(|s| s.row).collect();
        assert_eq!(r, vec![0, 1]);
    }

    #[test]
    fn batched_scores_equal_single_dots() {
        let dim = 19;
        let m = pseudo_random(50 * dim, 5);
        let q = pseudo_random(3 * dim, 6);
        let s = scores_batch(&m, dim, &q, 3);
        for qi in 0..3 {
            for r in 0..50 {
                let want = dot_scalar(&m[r * dim..(r + 1) * dim], &q[qi * dim..(qi + 1) * dim]);
                assert!((s[qi * 50 + r] - want).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn row_list_scan_equals_the_scalar_reference() {
        let dim = 37;
        let m = pseudo_random(dim * 9000, 5);
        let q = pseudo_random(dim, 6);
        let rows: Vec<usize> = (0..9000).filter(|r| r % 3 == 1).collect();
        let got = top_k_rows(&m, dim, &q, 12, &rows);
        let want = top_k_scalar(&m, dim, &q, 12, |r| r % 3 == 1);
        let q8 = Int8Rows::quantise(&m, dim);
        let got8 = top_k_rows_i8(&m, &q8, dim, &q, 12, &rows);
        let rows_of = |v: &[Scored]| v.iter().map(|s| s.row).collect::<Vec<_>>();
        assert_eq!(rows_of(&got8), rows_of(&want), "i8 row scan + re-rank: the exact top-k");
        assert_eq!(
            got.iter().map(|s| s.row).collect::<Vec<_>>(),
            want.iter().map(|s| s.row).collect::<Vec<_>>()
        );
        assert!(top_k_rows(&m, dim, &q, 5, &[]).is_empty());
    }
}
