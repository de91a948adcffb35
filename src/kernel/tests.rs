//! The fast kernels and scans against their scalar references.

use super::scan::CHUNK_ROWS;
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
        let a: Vec<i8> = (0..n).map(|i| ((i * 37) % 255) as i32 - 127).map(|v| v as i8).collect();
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
    assert_eq!(top_k(&m, 4, &q, 5, |r| r == 7).iter().map(|s| s.row).collect::<Vec<_>>(), vec![7]);
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
