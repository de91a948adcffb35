//! Leave-one-out over the catalogue: every item queries the rest, ranked as a search
//! would rank it (exact batched scan, or through the engine's own path), and scored by
//! its label.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use super::metrics::{
    Acc, ClassAcc, ClassScores, Scores, average_precision_at_k, per_class, precision_at_k,
};
use crate::category::{Prediction, Shares};
use crate::engine::ranking::{self, Candidate, Candidates, Steps};
use crate::error::{Error, Result};
use crate::index::{Filter, Segment};
use crate::kernel::{self, Scored, TopK};
use crate::label::label_value;
use crate::projection::Projection;
use crate::split::in_holdout;

/// One label's results, overall and per group.
#[derive(Debug, Clone, Serialize)]
pub struct LabelReport {
    pub label: String,
    pub overall: Scores,
    pub groups: BTreeMap<String, Scores>,
}

/// Leave-one-out evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct LooReport {
    pub k: usize,
    pub queries: usize,
    /// precision@k of the first label.
    pub precision: f64,
    pub map: f64,
    pub group_by: Option<String>,
    pub labels: Vec<LabelReport>,
    /// Per class of query item (its articleType, else its value of the first label),
    /// precision@k and share with nothing right on the first label, weakest first.
    pub per_class: Vec<ClassScores>,
    /// A few queries with their top-k ids, for the HTML report.
    #[serde(skip)]
    pub samples: Vec<(usize, Vec<Scored>)>,
}

/// The column whose values name a leave-one-out query's class in `per_class`.
const CLASS_COLUMN: &str = "articleType";

/// Queries scored per SGEMM block: big enough for the GEMM to be efficient, small enough
/// that the block of scores (block x catalogue) stays a few hundred MB at most.
const BLOCK: usize = 256;

/// Ranks the rest of the catalogue for the item in a row (itself excluded), when the
/// ranking must come from a search path other than the exact batched scan (`--ann`).
pub type Ranker<'a> = dyn Fn(usize) -> Result<Vec<Scored>> + Sync + 'a;

/// Turns a stored vector into the query that searches with it (e.g. another colour
/// weight); `None` in [`leave_one_out`] queries with the stored vector as it is.
pub type QueryOf<'a> = dyn Fn(&[f32]) -> Result<Vec<f32>> + Sync + 'a;

/// A trained search's re-ordering for leave-one-out: every item's projection computed
/// once, then each query's best [`RERANK_DEPTH`] candidates scored as
/// [`Engine::search_vector`](crate::engine::Engine::search_vector) does with `trained`.
#[derive(Debug)]
pub struct ProjectedRows {
    rows: Vec<f32>,
    dim: usize,
    mix: f32,
}

impl ProjectedRows {
    pub fn new(index: &Segment, projection: &Projection, mix: f32) -> Result<Self> {
        crate::projection::check_mix(mix)?;
        Ok(Self {
            rows: projection.project_matrix(index.matrix(), index.dim()),
            dim: projection.output_dim(),
            mix,
        })
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.rows[r * self.dim..(r + 1) * self.dim]
    }

    fn rescore(&self, query_row: usize, top: &mut [RowHit<'_>]) {
        let q = self.row(query_row);
        for s in top {
            s.score = crate::projection::blend(s.score, kernel::dot(q, self.row(s.row)), self.mix);
        }
    }
}

/// Category-aware ranking for leave-one-out, as [`Engine`](crate::engine::Engine)
/// searches rank: each query's prediction comes from its own vector (or a vote of its
/// nearest items), over the values of the items it ranks; the best of the predicted
/// category join the candidates; every candidate is blended with its value's probability.
pub struct CategoryRows<'a> {
    engine: &'a crate::engine::Engine,
    shares: Shares,
    counts: HashMap<String, Arc<HashMap<String, u64>>>,
    /// Per column, each row's value (lower-cased).
    values: HashMap<String, Vec<Option<String>>>,
}

impl std::fmt::Debug for CategoryRows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CategoryRows").field("shares", &self.shares).finish()
    }
}

impl<'a> CategoryRows<'a> {
    pub fn new(engine: &'a crate::engine::Engine, index: &Segment, shares: Shares) -> Self {
        let mut counts = HashMap::new();
        let mut values = HashMap::new();
        for column in &engine.info().columns {
            let vals: Vec<Option<String>> = (0..index.len())
                .map(|r| index.metadata(r).get(column).map(|v| v.to_lowercase()))
                .collect();
            let mut c: HashMap<String, u64> = HashMap::new();
            for v in vals.iter().flatten() {
                *c.entry(v.clone()).or_insert(0) += 1;
            }
            counts.insert(column.clone(), Arc::new(c));
            values.insert(column.clone(), vals);
        }
        Self { engine, shares, counts, values }
    }

    fn predict(&self, v: &[f32], top: &[RowHit<'_>]) -> Vec<Prediction> {
        let counts = |c: &str| self.counts.get(c).cloned().unwrap_or_default();
        let neighbours = top.iter().map(|s| (s.score, s.metadata));
        self.engine.predict(&counts, v, neighbours, true)
    }

    /// Rows holding `value` (any case) in `column`.
    fn holds(&self, column: &str, value: &str, row: usize) -> bool {
        let value = value.to_lowercase();
        self.values.get(column).and_then(|v| v[row].as_deref()).is_some_and(|v| v == value)
    }
}

/// A leave-one-out candidate: a row of the segment with its score.
#[derive(Debug, Clone)]
struct RowHit<'a> {
    row: usize,
    score: f32,
    metadata: &'a BTreeMap<String, String>,
}

impl Candidate for RowHit<'_> {
    type Key = usize;
    fn key(&self) -> usize {
        self.row
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn set_score(&mut self, score: f32) {
        self.score = score;
    }
    fn metadata(&self) -> &BTreeMap<String, String> {
        self.metadata
    }
}

/// One leave-one-out query's candidates: its row of exact scores against the segment
/// (itself left out), re-scored and predicted as [`Reorder`] says.
struct RowQuery<'a> {
    index: &'a Segment,
    row: usize,
    /// The query's similarity with every row.
    scores: &'a [f32],
    query: &'a [f32],
    reorder: Reorder<'a>,
}

impl<'a> Candidates for RowQuery<'a> {
    type Item = RowHit<'a>;

    fn nearest(&self, depth: usize, within: Option<(&str, &str)>) -> Result<Vec<RowHit<'a>>> {
        let keep = |j: usize| match within {
            None => true,
            Some((column, value)) => {
                self.reorder.category.is_some_and(|c| c.holds(column, value, j))
            }
        };
        let mut top = TopK::new(depth);
        for (j, s) in self.scores.iter().enumerate() {
            if j != self.row && keep(j) {
                top.push(Scored { row: j, score: *s });
            }
        }
        Ok(top
            .into_sorted()
            .into_iter()
            .map(|s| RowHit { row: s.row, score: s.score, metadata: self.index.metadata(s.row) })
            .collect())
    }

    fn predict(&self, candidates: &[RowHit<'a>], _asked: bool) -> Vec<Prediction> {
        self.reorder.category.map_or_else(Vec::new, |c| c.predict(self.query, candidates))
    }

    fn rescore(&self, candidates: &mut [RowHit<'a>]) -> bool {
        let Some(t) = self.reorder.trained else { return false };
        t.rescore(self.row, candidates);
        true
    }
}

/// How leave-one-out re-orders each query's best candidates, as searches do.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reorder<'a> {
    /// By the trained projection (`lookalike train`).
    pub trained: Option<&'a ProjectedRows>,
    /// By the predicted category.
    pub category: Option<&'a CategoryRows<'a>>,
}

/// What a leave-one-out run measures, and how it ranks.
#[derive(Clone, Copy)]
pub struct LeaveOneOut<'a> {
    pub k: usize,
    /// Relevance labels (each one or more columns); the first is the headline.
    pub labels: &'a [Vec<String>],
    /// Column whose values break the figures down.
    pub group_by: Option<&'a str>,
    /// The items that query (all of them rank).
    pub filter: &'a Filter,
    /// Sample queries kept for the HTML report.
    pub samples: usize,
    /// Rank through another search path than the exact scan (`--ann`, expansion).
    pub ranker: Option<&'a Ranker<'a>>,
    /// What a stored vector queries with (`None`: itself).
    pub query_of: Option<&'a QueryOf<'a>>,
    pub reorder: Reorder<'a>,
}

impl<'a> LeaveOneOut<'a> {
    /// Every item queries with itself, exact scan, no re-ordering, no samples.
    pub fn new(k: usize, labels: &'a [Vec<String>], filter: &'a Filter) -> Self {
        Self {
            k,
            labels,
            group_by: None,
            filter,
            samples: 0,
            ranker: None,
            query_of: None,
            reorder: Reorder::default(),
        }
    }
}

/// Every item (passing the filter) queries the rest; relevance = same label value.
pub fn leave_one_out(index: &Segment, run: &LeaveOneOut<'_>) -> Result<LooReport> {
    let LeaveOneOut { k, labels, group_by, filter, samples, ranker, query_of, reorder } = *run;
    if k == 0 {
        return Err(Error::BadParameter { name: "k", message: "must be at least 1".into() });
    }
    if labels.is_empty() {
        return Err(Error::BadParameter {
            name: "label",
            message: "at least one label column is needed".into(),
        });
    }
    let n = index.len();
    let dim = index.dim();
    let values: Vec<Vec<Option<String>>> = labels
        .iter()
        .map(|cols| (0..n).map(|r| label_value(index.metadata(r), cols)).collect())
        .collect();
    let counts: Vec<HashMap<&str, usize>> = values
        .iter()
        .map(|vals| {
            let mut m = HashMap::new();
            for v in vals.iter().flatten() {
                *m.entry(v.as_str()).or_insert(0) += 1;
            }
            m
        })
        .collect();
    let groups: Vec<Option<&str>> = (0..n)
        .map(|r| group_by.and_then(|g| index.metadata(r).get(g)).map(String::as_str))
        .collect();
    let queries: Vec<usize> =
        (0..n).filter(|&r| filter.is_empty() || filter.matches(index.metadata(r))).collect();
    let sample_rows: Vec<usize> = pick_samples(&queries, samples);
    // As the catalogue writes it (label values are compared lower-cased).
    let class_of = |r: usize| -> Option<String> {
        let m = index.metadata(r);
        m.get(CLASS_COLUMN).cloned().or_else(|| {
            let parts: Vec<&str> =
                labels[0].iter().filter_map(|c| m.get(c).map(String::as_str)).collect();
            (parts.len() == labels[0].len()).then(|| parts.join("+"))
        })
    };
    let mut classes: BTreeMap<String, ClassAcc> = BTreeMap::new();

    let nl = labels.len();
    let mut overall = vec![Acc::default(); nl];
    let mut per_group: Vec<BTreeMap<String, Acc>> = vec![BTreeMap::new(); nl];
    let mut sample_out = Vec::new();
    let mut qbuf = Vec::with_capacity(BLOCK * dim);
    for block in queries.chunks(BLOCK) {
        let ranked: Vec<(usize, Vec<Scored>)> = match ranker {
            Some(rank) => {
                block.par_iter().map(|&r| rank(r).map(|t| (r, t))).collect::<Result<_>>()?
            }
            None => {
                qbuf.clear();
                for &r in block {
                    match query_of {
                        Some(f) => qbuf.extend_from_slice(&f(index.vector(r))?),
                        None => qbuf.extend_from_slice(index.vector(r)),
                    }
                }
                let scores = kernel::scores_batch(index.matrix(), dim, &qbuf, block.len());
                // Ranked as a catalogue item's search ranks (`search --similar-to`).
                let steps = Steps {
                    k,
                    collapse: false,
                    trained: reorder.trained.is_some(),
                    category: reorder.category.map(|c| c.shares),
                    keep_nearest: false,
                    min_score: None,
                };
                block
                    .par_iter()
                    .enumerate()
                    .map(|(qi, &r)| {
                        let source = RowQuery {
                            index,
                            row: r,
                            scores: &scores[qi * n..(qi + 1) * n],
                            query: &qbuf[qi * dim..(qi + 1) * dim],
                            reorder,
                        };
                        // The query's filter chose the queries, not their candidates.
                        let mut top = ranking::rank(&source, &steps, &|_| false)?.hits;
                        top.truncate(k);
                        let top = top.into_iter().map(|h| Scored { row: h.row, score: h.score });
                        Ok((r, top.collect()))
                    })
                    .collect::<Result<_>>()?
            }
        };
        for (r, top) in ranked {
            for l in 0..nl {
                let Some(want) = values[l][r].as_deref() else { continue };
                let rel: Vec<bool> =
                    top.iter().map(|s| values[l][s.row].as_deref() == Some(want)).collect();
                let total = counts[l].get(want).copied().unwrap_or(1) - 1;
                let (p, ap) = (precision_at_k(&rel, k), average_precision_at_k(&rel, k, total));
                overall[l].add(p, ap);
                if l == 0
                    && let Some(class) = class_of(r)
                {
                    classes.entry(class).or_default().add(p, rel.contains(&true));
                }
                if let Some(g) = groups[r] {
                    per_group[l].entry(g.to_string()).or_default().add(p, ap);
                }
            }
            if sample_rows.binary_search(&r).is_ok() {
                sample_out.push((r, top));
            }
        }
    }
    let label_reports: Vec<LabelReport> = labels
        .iter()
        .enumerate()
        .map(|(l, cols)| LabelReport {
            label: cols.join("+"),
            overall: overall[l].scores(),
            groups: per_group[l].iter().map(|(g, a)| (g.clone(), a.scores())).collect(),
        })
        .collect();
    Ok(LooReport {
        k,
        queries: overall[0].n,
        precision: label_reports[0].overall.precision,
        map: label_reports[0].overall.map,
        group_by: group_by.map(str::to_string),
        labels: label_reports,
        per_class: per_class(&classes),
        samples: sample_out,
    })
}

/// The held-out items of `index` alone, as a segment to evaluate within (queries and the
/// items they rank are both unseen by training).
pub fn holdout(index: &Segment) -> Segment {
    let mut out = Segment::empty(index.dim());
    for r in (0..index.len()).filter(|&r| in_holdout(index.id(r))) {
        out.push(index.key(r), index.id(r).to_string(), index.record(r).clone(), index.vector(r));
    }
    out.finish();
    out
}

/// Evenly spread sample of `n` rows, sorted.
fn pick_samples(rows: &[usize], n: usize) -> Vec<usize> {
    if n == 0 || rows.is_empty() {
        return Vec::new();
    }
    let step = (rows.len() / n).max(1);
    rows.iter().step_by(step).take(n).copied().collect()
}
