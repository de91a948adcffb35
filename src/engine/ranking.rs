//! The one re-ranking pipeline: how deep a query looks, which candidates it takes (the
//! nearest, plus the best of its predicted category), the trained projection's re-order,
//! the category blend, the score floor and the last-place rule. Searches
//! ([`Engine::search_in`](super::Engine)) and leave-one-out evaluation
//! ([`crate::eval::leave_one_out`]) both rank through [`rank`], each with its own way of
//! finding candidates ([`Candidates`]: the in-memory index, or a block of exact scores),
//! so that evaluation ranks as search does by construction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use crate::category::{self, Prediction, Ranking, Shares};
use crate::error::Result;
use crate::projection::RERANK_DEPTH;

/// With near-duplicate collapsing, a search looks this many times deeper than k.
pub const COLLAPSE_DEPTH: usize = 4;

/// A candidate result: an item with its score.
pub trait Candidate {
    /// What tells two candidates of one item apart from others (an id, a row).
    type Key: Eq + Hash + Clone;
    fn key(&self) -> Self::Key;
    fn score(&self) -> f32;
    fn set_score(&mut self, score: f32);
    fn metadata(&self) -> &BTreeMap<String, String>;
}

impl Candidate for crate::index::Hit {
    type Key = String;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn set_score(&mut self, score: f32) {
        self.score = score;
    }
    fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
}

/// Where a query's candidates come from, and what re-scores them.
pub trait Candidates {
    type Item: Candidate;
    /// The `depth` items most similar to the query, best first; with `within`, only
    /// those whose `column` holds `value` (case aside).
    fn nearest(&self, depth: usize, within: Option<(&str, &str)>) -> Result<Vec<Self::Item>>;
    /// What the query looks like, from its vector and its nearest `candidates`
    /// (`asked`: the category ranking needs a prediction even without class heads).
    fn predict(&self, candidates: &[Self::Item], asked: bool) -> Vec<Prediction>;
    /// Re-score the candidates with the trained projection, when the query is trained
    /// (`false`: nothing was done).
    fn rescore(&self, candidates: &mut [Self::Item]) -> bool;
}

/// What a query asks of the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    pub k: usize,
    /// Near-duplicates will be collapsed after ranking: look deeper and leave the
    /// places to the collapsing.
    pub collapse: bool,
    /// The trained projection re-orders (see [`Candidates::rescore`]).
    pub trained: bool,
    /// The predicted category's share of the score (`None`: similarity alone).
    pub category: Option<Shares>,
    /// The last place goes to the most similar item the places before do not show.
    pub keep_nearest: bool,
    /// Results scoring below this are dropped.
    pub min_score: Option<f32>,
}

impl Steps {
    /// How many candidates the query takes: k, deeper for collapsing, for the trained
    /// re-order and for the category blend.
    pub fn depth(&self) -> usize {
        let mut depth =
            if self.collapse { (self.k * COLLAPSE_DEPTH).min(super::MAX_K) } else { self.k };
        if self.trained {
            depth = depth.max(RERANK_DEPTH);
        }
        if self.category.is_some() {
            depth = depth.max(category::CANDIDATES);
        }
        depth
    }
}

/// A query's ranked candidates (best first, not cut to k: collapsing may still drop
/// some) and what it looks like.
#[derive(Debug)]
pub struct Ranked<C> {
    pub hits: Vec<C>,
    pub predicted: Vec<Prediction>,
}

/// Rank a query's candidates: the nearest `depth`; the best of the predicted category
/// too, unless a filter on its column already decides (`filtered`) or the nearest hold
/// enough of it already; re-scored by the projection, then blended with the category;
/// the score floor; and, without collapsing, the last-place rule.
pub fn rank<S: Candidates>(
    source: &S,
    steps: &Steps,
    filtered: &dyn Fn(&str) -> bool,
) -> Result<Ranked<S::Item>> {
    let depth = steps.depth();
    let mut hits = source.nearest(depth, None)?;
    let predicted = source.predict(&hits, steps.category.is_some());
    let ranking = steps.category.map(|s| Ranking::new(&predicted, s)).filter(|r| !r.is_empty());
    // Search within the predicted category too, so that its best items are candidates
    // even when the query's nearest vectors are elsewhere. Needless when the candidates
    // already hold as many of it as the results need: the blend is the same for every
    // item of one value and grows with similarity, so none from further away could pass
    // them (unless the projection re-orders).
    let wanted = if steps.collapse { depth } else { steps.k };
    if let Some((column, value)) = ranking.as_ref().and_then(Ranking::within)
        && !filtered(column)
        && (steps.trained || holding(&hits, column, value) < wanted)
    {
        let seen: HashSet<_> = hits.iter().map(Candidate::key).collect();
        let more = source.nearest(depth, Some((column, value)))?;
        hits.extend(more.into_iter().filter(|h| !seen.contains(&h.key())));
    }
    if steps.trained && source.rescore(&mut hits) {
        hits.sort_by(|a, b| b.score().total_cmp(&a.score()));
    }
    // The similarities before the blend, for the last place.
    let mut similarity: Option<HashMap<_, f32>> = None;
    if let Some(r) = &ranking {
        if steps.keep_nearest {
            similarity = Some(hits.iter().map(|h| (h.key(), h.score())).collect());
        }
        for h in &mut hits {
            let blended = r.score(h.score(), h.metadata());
            h.set_score(blended);
        }
        hits.sort_by(|a, b| b.score().total_cmp(&a.score()));
    }
    if let Some(floor) = steps.min_score {
        hits.retain(|h| h.score() >= floor);
    }
    if !steps.collapse
        && let Some(sim) = &similarity
    {
        category::keep_nearest(&mut hits, steps.k, |h| {
            sim.get(&h.key()).copied().unwrap_or(f32::NEG_INFINITY)
        });
    }
    Ok(Ranked { hits, predicted })
}

/// How many candidates hold `value` in `column` (case and spaces aside).
fn holding<C: Candidate>(hits: &[C], column: &str, value: &str) -> usize {
    hits.iter()
        .filter(|h| h.metadata().get(column).is_some_and(|v| v.trim().eq_ignore_ascii_case(value)))
        .count()
}
