//! The search planner: whether a search compares every candidate or goes approximate
//! (the store's own search, or the partition's nearest cells), and how many cells it
//! probes.

use std::str::FromStr;

/// How a search compares vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Exact below [`ANN_MIN_CANDIDATES`] candidates; above, the store's own search (a
    /// Milvus collection's) or the partition's nearest cells.
    #[default]
    Auto,
    /// Compare every candidate.
    Exact,
    /// The store's own search, or the partition's nearest cells, whenever there is one.
    Ann,
}

impl FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "exact" => Ok(Self::Exact),
            "ann" => Ok(Self::Ann),
            _ => Err(format!("unknown search mode '{s}' (auto, exact, ann)")),
        }
    }
}

/// From this many candidates on, `Auto` scans the nearest partition cells instead of
/// comparing every candidate. Below it the exact scan (i8 + re-rank) is fast and perfect:
/// 2–3.5 ms at 44k, 4.6 ms at 100k (BENCHMARKS.md, "Scale").
pub const ANN_MIN_CANDIDATES: usize = 200_000;

/// A filter must keep at least one item in this many for `Auto` to use the partition:
/// below, the exact scan of the matches is as fast and perfect (1% of 1M: 1.2–1.8 ms).
pub const ANN_MIN_SELECTIVITY: usize = 10;

/// Cells an approximate search scans: a share of the partition, at least a few. Chosen on
/// the benchmarks (BENCHMARKS.md, "Scale"): 16 of 1,000 cells hold 99.95% of the exact
/// top-10 at 1M (23x faster than exact); on the real 44k, 16 of 211 cells hold 99.8%
/// where 8 hold only 98.6%.
pub const ANN_PROBE_SHARE: f64 = 0.016;
pub const ANN_MIN_PROBES: usize = 16;

/// How many cells an approximate search scans: exactly so many (benchmarks' sweeps), or
/// so many widened for a query far from every centroid ([`Cells::scan_adaptive`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probes {
    Fixed(usize),
    Adaptive(usize),
}

/// Cells an unfiltered approximate search scans in a partition of `cells`.
pub fn probes_for(cells: usize) -> usize {
    ((cells as f64 * ANN_PROBE_SHARE).ceil() as usize).max(ANN_MIN_PROBES).min(cells)
}

/// The planner: `None` to compare all `n` candidates (of `total` items), or the number of
/// partition cells to scan. A filter keeping a share of the items gets as many more cells
/// probed, so that the probed cells hold about as many matches as without it; when that
/// is every cell, the exact scan of the candidates gives the same answer faster.
pub fn plan(n: usize, total: usize, mode: SearchMode, cells: Option<usize>) -> Option<usize> {
    let cells = cells.filter(|&c| c > 0)?;
    let approximate = approximate(n, total, mode);
    let share = n.max(1) as f64 / total.max(1) as f64;
    approximate
        .then(|| ((probes_for(cells) as f64 / share).ceil() as usize).min(cells))
        .filter(|&probes| probes < cells)
}

/// Whether a search of `n` candidates (of `total` items) in `mode` is approximate: asked
/// for, or enough candidates that comparing each costs more than a partition's probe.
pub(super) fn approximate(n: usize, total: usize, mode: SearchMode) -> bool {
    match mode {
        SearchMode::Exact => false,
        SearchMode::Ann => true,
        SearchMode::Auto => n >= ANN_MIN_CANDIDATES && n * ANN_MIN_SELECTIVITY >= total,
    }
}
