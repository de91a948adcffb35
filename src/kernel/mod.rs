//! Exact nearest-neighbour kernels over a dense row-major matrix of unit vectors.
//!
//! Cosine similarity of normalised vectors is their dot product. The scan is memory-bound
//! (44k x 1280 f32 is 225 MB), so the hand-written part is small: an AVX2/FMA dot product
//! with four independent accumulators, checked against the plain scalar reference
//! [`dot_scalar`], and a bounded heap for top-k. Batched queries (evaluation) go through a
//! blocked SGEMM from `matrixmultiply` instead.
//!
//! `scalar.rs` holds the references, `simd.rs` the AVX2 versions (x86_64 only), `topk.rs`
//! the bounded heap, `int8.rs` the i8 codes, `scan.rs` the scans over rows built from them.

mod int8;
mod scalar;
mod scan;
#[cfg(target_arch = "x86_64")]
mod simd;
#[cfg(test)]
mod tests;
mod topk;

use half::f16;

pub use int8::Int8Rows;
pub use scalar::{dot_f16_scalar, dot_i8_scalar, dot_scalar, top_k_scalar};
pub use scan::{rerank_depth, scores_batch, top_k, top_k_f16, top_k_i8, top_k_rows, top_k_rows_i8};
pub use topk::{Scored, TopK};

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
