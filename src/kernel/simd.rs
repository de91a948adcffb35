//! AVX2/FMA (and F16C) dot products, used when the CPU has them; each is tested against
//! its scalar reference in `scalar.rs`.

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
            let (x, y) =
                unsafe { (_mm256_loadu_ps(pa.add(i + 8 * j)), _mm256_loadu_ps(pb.add(i + 8 * j))) };
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
