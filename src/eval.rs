//! Retrieval-quality evaluation: precision@k and mAP@k of an index, by leave-one-out over
//! the catalogue itself or with outside photos (shopper snapshots) as queries.
//!
//! Definitions (the same as the Python reference in `bench/reference.py`):
//! - precision@k: share of the top k results that are relevant (k fixed, even when fewer
//!   relevant items exist).
//! - AP@k: `(1 / min(k, R)) * sum_{i<=k} precision@i * rel(i)`, R the number of relevant
//!   items in the catalogue (the query excluded); queries with R = 0 count as 0.
//! - mAP@k: mean AP@k over queries.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use std::sync::Arc;

use crate::category::{Ranking, Shares};
use crate::error::{Error, Result};
use crate::index::{Filter, Segment};
use crate::kernel::{self, Scored, TopK};
use crate::projection::{Projection, RERANK_DEPTH};

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
struct Acc {
    n: usize,
    p: f64,
    ap: f64,
}

impl Acc {
    fn add(&mut self, p: f64, ap: f64) {
        self.n += 1;
        self.p += p;
        self.ap += ap;
    }
    fn scores(&self) -> Scores {
        let n = self.n.max(1) as f64;
        Scores { queries: self.n, precision: self.p / n, map: self.ap / n }
    }
}

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
    /// A few queries with their top-k ids, for the HTML report.
    #[serde(skip)]
    pub samples: Vec<(usize, Vec<Scored>)>,
}

/// A label: one column, or several joined with `+` (e.g. `articleType+baseColour`).
pub(crate) fn label_value(md: &BTreeMap<String, String>, cols: &[String]) -> Option<String> {
    let mut parts = Vec::with_capacity(cols.len());
    for c in cols {
        parts.push(md.get(c)?.to_lowercase());
    }
    Some(parts.join("\u{1f}"))
}

/// Check label specs (`a`, `a+b`) against known columns.
pub fn parse_labels(specs: &[String], columns: &[String]) -> Result<Vec<Vec<String>>> {
    specs
        .iter()
        .map(|s| {
            s.split('+')
                .map(|c| {
                    columns.iter().find(|k| k.eq_ignore_ascii_case(c.trim())).cloned().ok_or_else(
                        || Error::UnknownColumn {
                            column: c.trim().to_string(),
                            known: columns.join(", "),
                        },
                    )
                })
                .collect()
        })
        .collect()
}

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

    fn rerank(&self, query_row: usize, mut top: Vec<Scored>) -> Vec<Scored> {
        let q = self.row(query_row);
        for s in &mut top {
            s.score = crate::projection::blend(s.score, kernel::dot(q, self.row(s.row)), self.mix);
        }
        top.sort_by(|a, b| b.score.total_cmp(&a.score));
        top
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

    fn ranking(&self, index: &Segment, v: &[f32], top: &[Scored]) -> Ranking {
        let counts = |c: &str| self.counts.get(c).cloned().unwrap_or_default();
        let neighbours = top.iter().map(|s| (s.score, index.metadata(s.row)));
        Ranking::new(&self.engine.predict(&counts, v, neighbours, true), self.shares)
    }

    /// Rows holding `value` (any case) in `column`.
    fn holds(&self, column: &str, value: &str, row: usize) -> bool {
        let value = value.to_lowercase();
        self.values.get(column).and_then(|v| v[row].as_deref()).is_some_and(|v| v == value)
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

/// Every item (passing `filter`) queries the rest; relevance = same label value.
#[allow(clippy::too_many_arguments)]
pub fn leave_one_out(
    index: &Segment,
    k: usize,
    labels: &[Vec<String>],
    group_by: Option<&str>,
    filter: &Filter,
    samples: usize,
    ranker: Option<&Ranker<'_>>,
    query_of: Option<&QueryOf<'_>>,
    reorder: Reorder<'_>,
) -> Result<LooReport> {
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
                // As deep as a search looks for the same re-ordering.
                let mut depth = k;
                if reorder.trained.is_some() {
                    depth = depth.max(RERANK_DEPTH);
                }
                if reorder.category.is_some() {
                    depth = depth.max(crate::category::CANDIDATES);
                }
                block
                    .par_iter()
                    .enumerate()
                    .map(|(qi, &r)| {
                        let row = &scores[qi * n..(qi + 1) * n];
                        let best = |keep: &dyn Fn(usize) -> bool| {
                            let mut top = TopK::new(depth);
                            for (j, s) in row.iter().enumerate() {
                                if j != r && keep(j) {
                                    top.push(Scored { row: j, score: *s });
                                }
                            }
                            top.into_sorted()
                        };
                        let mut top = best(&|_| true);
                        let query = &qbuf[qi * dim..(qi + 1) * dim];
                        let ranking = reorder.category.map(|c| (c, c.ranking(index, query, &top)));
                        if let Some((c, ranking)) = &ranking
                            && let Some((column, value)) = ranking.within()
                        {
                            let seen: std::collections::HashSet<usize> =
                                top.iter().map(|s| s.row).collect();
                            let more = best(&|j| c.holds(column, value, j));
                            top.extend(more.into_iter().filter(|s| !seen.contains(&s.row)));
                        }
                        if let Some(t) = reorder.trained {
                            top = t.rerank(r, top);
                        }
                        if let Some((_, ranking)) = &ranking
                            && !ranking.is_empty()
                        {
                            for s in &mut top {
                                s.score = ranking.score(s.score, index.metadata(s.row));
                            }
                            top.sort_by(|a, b| b.score.total_cmp(&a.score));
                        }
                        top.truncate(k);
                        (r, top)
                    })
                    .collect()
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
        samples: sample_out,
    })
}

pub use crate::split::{HOLDOUT_PERCENT, in_holdout};

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

/// One outside query: a photo and the article types that count as a match.
#[derive(Debug, Clone)]
pub struct PhotoQuery {
    pub file: PathBuf,
    pub label: String,
    pub matches: Vec<String>,
}

/// Read a queries CSV (`file,label,...,match_article_types`).
pub fn read_queries(csv_path: &Path, images: &Path) -> Result<Vec<PhotoQuery>> {
    let bad = |message: String| Error::BadParameter { name: "queries", message };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(csv_path)
        .map_err(|e| bad(format!("{}: {e}", csv_path.display())))?;
    let headers = rdr.headers().map_err(|e| bad(e.to_string()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(fc), Some(mc)) = (col("file"), col("match_article_types")) else {
        return Err(bad(format!(
            "{} needs 'file' and 'match_article_types' columns (found: {})",
            csv_path.display(),
            headers.iter().collect::<Vec<_>>().join(", ")
        )));
    };
    let lc = col("label");
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let (Some(f), Some(m)) = (rec.get(fc), rec.get(mc)) else { continue };
        out.push(PhotoQuery {
            file: images.join(f.trim()),
            label: lc.and_then(|i| rec.get(i)).unwrap_or("").trim().to_string(),
            matches: m
                .split('|')
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
        });
    }
    Ok(out)
}

/// Results of outside-photo queries.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoReport {
    pub k: usize,
    pub queries: usize,
    pub precision: f64,
    /// Share of queries with no correct item in their top k.
    pub none_correct: f64,
    pub by_label: BTreeMap<String, Scores>,
    pub failed: Vec<(String, String)>,
    #[serde(skip)]
    pub samples: Vec<(PathBuf, Vec<Scored>)>,
}

/// Score ranked results of photo queries: relevant = the item's `column` is in `matches`.
pub fn score_photo_queries(
    index: &Segment,
    column: &str,
    k: usize,
    results: Vec<(PhotoQuery, std::result::Result<Vec<Scored>, String>)>,
    samples: usize,
) -> PhotoReport {
    let mut overall = Acc::default();
    let mut none = 0usize;
    let mut by_label: BTreeMap<String, Acc> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut sample_out = Vec::new();
    let step = (results.len() / samples.max(1)).max(1);
    for (i, (q, res)) in results.into_iter().enumerate() {
        let top = match res {
            Ok(t) => t,
            Err(e) => {
                failed.push((q.file.display().to_string(), e));
                continue;
            }
        };
        let rel: Vec<bool> = top
            .iter()
            .map(|s| {
                index
                    .metadata(s.row)
                    .get(column)
                    .is_some_and(|v| q.matches.contains(&v.to_lowercase()))
            })
            .collect();
        let p = precision_at_k(&rel, k);
        if !rel.iter().any(|r| *r) {
            none += 1;
        }
        overall.add(p, 0.0);
        by_label.entry(q.label.clone()).or_default().add(p, 0.0);
        if samples > 0 && i % step == 0 && sample_out.len() < samples {
            sample_out.push((q.file.clone(), top));
        }
    }
    let s = overall.scores();
    PhotoReport {
        k,
        queries: s.queries,
        precision: s.precision,
        none_correct: none as f64 / s.queries.max(1) as f64,
        by_label: by_label.iter().map(|(l, a)| (l.clone(), a.scores())).collect(),
        failed,
        samples: sample_out,
    }
}

/// Run outside-photo queries against an opened index, with `query`'s k, filter, squaring
/// and search mode (through the engine's own search path, so the figures are what
/// `search` gives).
pub fn photo_queries(
    engine: &crate::engine::Engine,
    queries: Vec<PhotoQuery>,
    column: &str,
    query: &crate::engine::Query,
    samples: usize,
) -> Result<PhotoReport> {
    let k = query.k;
    if k == 0 {
        return Err(Error::BadParameter { name: "k", message: "must be at least 1".into() });
    }
    let index = engine.index().compacted();
    if !engine.info().columns.iter().any(|c| c == column) {
        return Err(Error::UnknownColumn {
            column: column.to_string(),
            known: engine.info().columns.join(", "),
        });
    }
    let files: Vec<PathBuf> = queries.iter().map(|q| q.file.clone()).collect();
    let vectors = engine.embed_files(&files, query.resize, query.locate);
    let results: Vec<_> = queries
        .into_iter()
        .zip(vectors)
        .map(|(q, v)| {
            let top = v.and_then(|v| {
                let hits = engine.search_embedded(&v, query).map_err(|e| e.to_string())?.hits;
                Ok(hits
                    .into_iter()
                    .filter_map(|h| index.row_of(&h.id).map(|row| Scored { row, score: h.score }))
                    .collect())
            });
            (q, top)
        })
        .collect();
    Ok(score_photo_queries(&index, column, k, results, samples))
}

fn item_tile(
    index: &Segment,
    root: Option<&str>,
    s: &Scored,
    label: &str,
    correct: Option<bool>,
) -> crate::report::Tile {
    let md = index.metadata(s.row);
    let image = match root {
        Some(r) => format!("{}/{}", r.trim_end_matches('/'), index.path(s.row)),
        None => index.path(s.row).to_string(),
    };
    crate::report::Tile {
        image,
        caption: format!(
            "{} {:.3} {}",
            index.id(s.row),
            s.score,
            md.get(label).map(String::as_str).unwrap_or("")
        ),
        correct,
    }
}

/// Rows of the HTML report for a leave-one-out run (first label decides right/wrong).
pub fn loo_rows(
    index: &Segment,
    root: Option<&str>,
    report: &LooReport,
    labels: &[Vec<String>],
) -> Vec<crate::report::Row> {
    let cols = &labels[0];
    let shown = cols.first().map(String::as_str).unwrap_or("");
    report
        .samples
        .iter()
        .map(|(q, top)| {
            let want = label_value(index.metadata(*q), cols);
            let query = item_tile(index, root, &Scored { row: *q, score: 1.0 }, shown, None);
            let results = top
                .iter()
                .map(|s| {
                    let ok = want.is_some() && label_value(index.metadata(s.row), cols) == want;
                    item_tile(index, root, s, shown, Some(ok))
                })
                .collect();
            crate::report::Row { query, results }
        })
        .collect()
}

/// Rows of the HTML report for outside-photo queries.
pub fn photo_rows(
    index: &Segment,
    root: Option<&str>,
    report: &PhotoReport,
    queries: &[PhotoQuery],
    column: &str,
) -> Vec<crate::report::Row> {
    report
        .samples
        .iter()
        .map(|(file, top)| {
            let q = queries.iter().find(|q| &q.file == file);
            let abs = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
            let query = crate::report::Tile {
                image: abs.display().to_string(),
                caption: q
                    .map(|q| format!("{} → {}", q.label, q.matches.join("|")))
                    .unwrap_or_default(),
                correct: None,
            };
            let results = top
                .iter()
                .map(|s| {
                    let ok = q.is_some_and(|q| {
                        index
                            .metadata(s.row)
                            .get(column)
                            .is_some_and(|v| q.matches.contains(&v.to_lowercase()))
                    });
                    item_tile(index, root, s, column, Some(ok))
                })
                .collect();
            crate::report::Row { query, results }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Change, ItemRecord, MemoryStore, Store};

    #[test]
    fn the_holdout_split_is_a_fixed_fifth_by_id() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("{}", 10_000 + i)).collect();
        let held = ids.iter().filter(|id| in_holdout(id)).count();
        assert!((3_700..4_300).contains(&held), "{held} of 20,000");
        // Fixed: the same ids, whatever else is in the catalogue or its order.
        let again = ids.iter().rev().filter(|id| in_holdout(id)).count();
        assert_eq!(held, again);
    }

    #[test]
    fn precision_on_hand_made_rankings() {
        assert_eq!(precision_at_k(&[true, false, true, false, false], 5), 0.4);
        assert_eq!(precision_at_k(&[true, true], 5), 0.4, "missing results count as wrong");
        assert_eq!(precision_at_k(&[false; 5], 5), 0.0);
        assert_eq!(precision_at_k(&[true; 5], 3), 1.0);
    }

    #[test]
    fn average_precision_on_hand_made_rankings() {
        // relevant at ranks 1 and 3, 2 relevant in all: (1/1 + 2/3) / 2
        let ap = average_precision_at_k(&[true, false, true, false, false], 5, 2);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        // 10 relevant in the catalogue, k = 5: normalised by min(k, R) = 5
        let ap = average_precision_at_k(&[false, true, false, false, false], 5, 10);
        assert!((ap - 0.5 / 5.0).abs() < 1e-12);
        assert_eq!(average_precision_at_k(&[true; 5], 5, 5), 1.0);
        assert_eq!(average_precision_at_k(&[false; 5], 5, 0), 0.0);
    }

    fn tiny_index() -> Segment {
        // Two tight clusters; one item of cluster A is labelled B (a hard case).
        let items: [(&str, [f32; 2], &str, &str); 5] = [
            ("a1", [1.0, 0.0], "A", "red"),
            ("a2", [0.99, 0.14], "A", "blue"),
            ("a3", [0.98, 0.2], "B", "red"),
            ("b1", [0.0, 1.0], "B", "red"),
            ("b2", [0.14, 0.99], "B", "red"),
        ];
        let s = MemoryStore::new();
        let changes: Vec<Change> = items
            .iter()
            .map(|(id, v, t, c)| {
                let mut record = ItemRecord::default();
                record.metadata.insert("type".into(), t.to_string());
                record.metadata.insert("colour".into(), c.to_string());
                record
                    .metadata
                    .insert("master".into(), if id.starts_with('a') { "X" } else { "Y" }.into());
                Change::Put { id: id.to_string(), record, vector: v.to_vec() }
            })
            .collect();
        s.apply(None, &changes).unwrap();
        crate::index::VectorIndex::load(&s, 2).unwrap().compacted().as_ref().clone()
    }

    #[test]
    fn leave_one_out_on_a_known_layout() {
        let idx = tiny_index();
        let cols = vec!["type".to_string(), "colour".to_string(), "master".to_string()];
        let labels = parse_labels(&["type".into(), "type+colour".into()], &cols).unwrap();
        let r = leave_one_out(
            &idx,
            1,
            &labels,
            Some("master"),
            &Filter::default(),
            0,
            None,
            None,
            Reorder::default(),
        )
        .unwrap();
        // Nearest neighbours: a1->a2 (A ok), a2->a3 (A vs B wrong), a3->a2 (B vs A wrong),
        // b1->b2 (ok), b2->b1 (ok): 3 of 5.
        assert_eq!(r.queries, 5);
        assert!((r.precision - 0.6).abs() < 1e-12, "{r:?}");
        assert!((r.labels[0].groups["X"].precision - 1.0 / 3.0).abs() < 1e-12);
        assert!((r.labels[0].groups["Y"].precision - 1.0).abs() < 1e-12);
        // type+colour: a1->a2 (A red vs A blue: wrong), b1->b2 ok, b2->b1 ok,
        // a2 (A blue, no other) -> counted with AP 0, a3 -> a2 wrong: 2/5.
        assert!((r.labels[1].overall.precision - 0.4).abs() < 1e-12, "{:?}", r.labels[1]);
    }

    #[test]
    fn unknown_label_is_named() {
        let cols = vec!["type".to_string()];
        assert!(matches!(
            parse_labels(&["colour".into()], &cols),
            Err(Error::UnknownColumn { .. })
        ));
    }

    #[test]
    fn photo_queries_score_against_match_lists() {
        let idx = tiny_index();
        let q = |label: &str, m: &[&str]| PhotoQuery {
            file: PathBuf::from("q.jpg"),
            label: label.into(),
            matches: m.iter().map(|s| s.to_lowercase()).collect(),
        };
        let s = |rows: &[usize]| {
            Ok(rows.iter().map(|&row| Scored { row, score: 1.0 }).collect::<Vec<_>>())
        };
        let results = vec![
            (q("x", &["A"]), s(&[0, 1])),
            (q("y", &["B"]), s(&[0, 1])),
            (q("y", &["b"]), s(&[3, 2])),
        ];
        let r = score_photo_queries(&idx, "type", 2, results, 0);
        assert_eq!(r.queries, 3);
        assert!((r.precision - (1.0 + 0.0 + 1.0) / 3.0).abs() < 1e-12);
        assert!((r.none_correct - 1.0 / 3.0).abs() < 1e-12);
        assert!((r.by_label["y"].precision - 0.5).abs() < 1e-12);
    }
}
