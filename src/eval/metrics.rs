//! The measures: precision@k and AP@k of one ranking, and their means over queries.

use std::collections::BTreeMap;

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

/// How the queries of one class fared: a shopper feels the weakest class, not the mean.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassScores {
    /// The queries' label (outside photos) or articleType (leave-one-out).
    pub class: String,
    pub queries: usize,
    /// Mean precision@k of the class's queries.
    pub precision: f64,
    /// Share of the class's queries with no relevant item in their top k.
    pub none_correct: f64,
}

/// Per-class tallies, turned into [`ClassScores`] weakest first.
#[derive(Debug, Default, Clone)]
pub(super) struct ClassAcc {
    n: usize,
    p: f64,
    none: usize,
}

impl ClassAcc {
    pub(super) fn add(&mut self, p: f64, any_relevant: bool) {
        self.n += 1;
        self.p += p;
        if !any_relevant {
            self.none += 1;
        }
    }
}

/// The classes weakest first (lowest precision, then most queries with nothing right,
/// then by name), so the table a person reads starts with what needs work.
pub(super) fn per_class(classes: &BTreeMap<String, ClassAcc>) -> Vec<ClassScores> {
    let mut out: Vec<ClassScores> = classes
        .iter()
        .filter(|(_, a)| a.n > 0)
        .map(|(class, a)| ClassScores {
            class: class.clone(),
            queries: a.n,
            precision: a.p / a.n as f64,
            none_correct: a.none as f64 / a.n as f64,
        })
        .collect();
    out.sort_by(|a, b| {
        a.precision
            .total_cmp(&b.precision)
            .then(b.none_correct.total_cmp(&a.none_correct))
            .then_with(|| a.class.cmp(&b.class))
    });
    out
}
