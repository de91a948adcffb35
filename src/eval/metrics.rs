//! The measures: precision@k and AP@k of one ranking, and their means over queries.

use serde::Serialize;

/// precision@k of a ranking given as relevance flags, best first.
pub fn precision_at_k(relevant: &[bool], k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    relevant.iter().take(k).filter(|r| **r).count() as f64 / k as f64
}

/// AP@k with `total_relevant` relevant items in the collection.
pub fn average_precision_at_k(relevant: &[bool], k: usize, total_relevant: usize) -> f64 {
    let denom = k.min(total_relevant);
    if denom == 0 {
        return 0.0;
    }
    let mut hits = 0usize;
    let mut sum = 0.0;
    for (i, r) in relevant.iter().take(k).enumerate() {
        if *r {
            hits += 1;
            sum += hits as f64 / (i + 1) as f64;
        }
    }
    sum / denom as f64
}

/// Mean of precision and AP over a group of queries.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Scores {
    pub queries: usize,
    pub precision: f64,
    pub map: f64,
}

#[derive(Default, Clone)]
pub(super) struct Acc {
    pub(super) n: usize,
    p: f64,
    ap: f64,
}

impl Acc {
    pub(super) fn add(&mut self, p: f64, ap: f64) {
        self.n += 1;
        self.p += p;
        self.ap += ap;
    }
    pub(super) fn scores(&self) -> Scores {
        let n = self.n.max(1) as f64;
        Scores { queries: self.n, precision: self.p / n, map: self.ap / n }
    }
}
