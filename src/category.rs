//! What a photo shows, in the catalogue's own words: the model's class heads (article
//! type, colour) turned into probabilities over the values an index's items hold, and the
//! ranking that favours items of the predicted category, as eBay's and Alibaba's visual
//! search do ("Looks like: Casual Shoes, 92%").
//!
//! The heads are cosine classifiers on the model's unit embedding (one unit proxy per
//! class; probabilities = softmax(scale · proxy · embedding)), so a prediction is a
//! function of a vector alone: a photo query, a stored item (`--similar-to`,
//! leave-one-out) and a colour-reweighted query all get theirs the same way, and nothing
//! is stored per item. The model's classes are restricted to the values the index holds
//! and renormalised; a shop whose labels are not the model's classes (or a model without
//! heads) gets the prediction from its own labels instead: a vote of the nearest items.
//!
//! Ranking blends the similarity with the probability the prediction gives each item's
//! value: `(1 - Σ share) · score + Σ share · p(value of the item)`. Scores stay in -1..=1;
//! a confident prediction puts its category first, an unsure one hardly moves anything.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the class heads kept inside an index folder, beside the model copy.
pub const HEADS_FILE: &str = "model.heads.json";

/// Share of the score the predicted article type gets by default (see [`Ranking`]);
/// chosen on the catalogue's training split (BENCHMARKS.md, "Fashion quality").
pub const DEFAULT_TYPE_SHARE: f32 = 0.3;
/// Share of the score the predicted colour gets by default.
pub const DEFAULT_COLOUR_SHARE: f32 = 0.1;
/// Largest share a query may give the category.
pub const MAX_SHARE: f32 = 0.9;
/// A prediction at least this sure also searches within its category, so that the
/// category's best items are candidates even when the photo's nearest vectors are not.
pub const WITHIN_MIN_PROBABILITY: f32 = 0.2;
/// Nearest items whose labels vote on what the query shows.
pub const VOTERS: usize = 20;
/// Candidates a category-ranked search re-orders: the plain search's best this many (and
/// as many of the predicted category when those hold too few of it). Deeper costs scan
/// time and hardly moves the top results: the blend lifts an item by at most the share.
pub const CANDIDATES: usize = 50;
/// From this many results on, a category-ranked snapshot's last place goes to the most
/// similar item the places before do not show, whatever its kind: a confident wrong
/// prediction then still shows the look-alike instead of five items of the wrong kind
/// (BENCHMARKS.md, "Fashion model": street photos with nothing right 12.3 % → 9.0 %).
pub const KEEP_NEAREST_FROM_K: usize = 3;
/// The model's classes must cover this share of an index's labelled items for its own
/// probabilities to be used; below, the nearest items vote.
const MIN_COVERAGE: f64 = 0.5;
/// Softness of the vote: a neighbour's weight is exp((score - best) / T).
const VOTE_TEMPERATURE: f32 = 0.05;
/// The column a vote predicts when the model has no heads.
pub const VOTE_COLUMN: &str = "articleType";

/// Errors reading a model's class heads.
#[derive(Debug, thiserror::Error)]
pub enum CategoryError {
    #[error("cannot read the model's class heads {}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid class heads {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Deserialize)]
struct HeadsFile {
    format: u32,
    dim: usize,
    scale: f32,
    heads: Vec<HeadFile>,
}

#[derive(Deserialize)]
struct HeadFile {
    column: String,
    classes: Vec<String>,
    proxies: Vec<Vec<f32>>,
}

/// One metadata column the model predicts: its classes and their unit proxies.
#[derive(Debug, Clone)]
pub struct Head {
    column: String,
    classes: Vec<String>,
    /// `classes x dim`, each row of unit length.
    proxies: Vec<f32>,
}

impl Head {
    pub fn column(&self) -> &str {
        &self.column
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }
}

/// A model's class heads (`*.heads.json`, written by `training/export.py`).
#[derive(Debug, Clone)]
pub struct Heads {
    dim: usize,
    scale: f32,
    heads: Vec<Head>,
}

impl Heads {
    /// Read and check a heads file.
    pub fn load(path: &Path) -> Result<Self, CategoryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| CategoryError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parse heads JSON; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, CategoryError> {
        let bad = |message: String| CategoryError::Invalid { path: origin.to_path_buf(), message };
        let f: HeadsFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if f.format != 1 {
            return Err(bad(format!("format {} is not supported (1 is)", f.format)));
        }
        if f.dim == 0 || !f.scale.is_finite() || f.scale <= 0.0 {
            return Err(bad("dim and scale must be positive".into()));
        }
        let mut heads = Vec::with_capacity(f.heads.len());
        for h in f.heads {
            if h.classes.is_empty() || h.classes.len() != h.proxies.len() {
                return Err(bad(format!(
                    "head '{}' has {} classes and {} proxies",
                    h.column,
                    h.classes.len(),
                    h.proxies.len()
                )));
            }
            let mut proxies = Vec::with_capacity(h.classes.len() * f.dim);
            for (class, p) in h.classes.iter().zip(&h.proxies) {
                let norm = p.iter().map(|x| x * x).sum::<f32>().sqrt();
                if p.len() != f.dim || !norm.is_finite() || (norm - 1.0).abs() > 1e-3 {
                    return Err(bad(format!(
                        "proxy of '{class}' in head '{}' is not a unit vector of {} values",
                        h.column, f.dim
                    )));
                }
                proxies.extend_from_slice(p);
            }
            heads.push(Head { column: h.column, classes: h.classes, proxies });
        }
        Ok(Self { dim: f.dim, scale: f.scale, heads })
    }

    /// Length of the embeddings the heads classify.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn heads(&self) -> &[Head] {
        &self.heads
    }

    pub fn head(&self, column: &str) -> Option<&Head> {
        self.heads.iter().find(|h| h.column == column)
    }

    /// The head's probability for each of its classes, for a unit embedding `e`.
    pub fn probabilities(&self, head: &Head, e: &[f32]) -> Vec<f32> {
        let logits: Vec<f32> = head
            .proxies
            .chunks_exact(self.dim)
            .map(|p| self.scale * crate::kernel::dot(p, e))
            .collect();
        softmax(&logits)
    }
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|x| x / sum).collect()
}

/// Where a prediction comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The model's class head, restricted to the values the index holds.
    Model,
    /// A vote of the nearest items' labels.
    Neighbours,
    /// Both, averaged (see [`combine`]).
    Both,
}

/// What a query looks like, for one metadata column.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Prediction {
    pub column: String,
    /// The most probable value, as the catalogue (or the model) writes it.
    pub value: String,
    pub probability: f32,
    pub source: Source,
    /// Every value with its probability (lower-cased), for ranking.
    #[serde(skip)]
    dist: BTreeMap<String, f32>,
}

impl Prediction {
    /// The probability of `value` (any case); 0 for values it does not know.
    pub fn probability_of(&self, value: &str) -> f32 {
        self.dist.get(&value.to_lowercase()).copied().unwrap_or(0.0)
    }

    fn from_dist(
        column: &str,
        dist: BTreeMap<String, f32>,
        names: &BTreeMap<String, String>,
        source: Source,
    ) -> Option<Self> {
        let (best, p) = dist
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(v, p)| (v.clone(), *p))?;
        let value = names.get(&best).cloned().unwrap_or(best);
        Some(Self { column: column.to_string(), value, probability: p, source, dist })
    }
}

/// The model's prediction for `column`, over the values an index holds (`counts`: lower-
/// cased value → items), renormalised; `None` when the model's classes cover too little
/// of the index's labelled items to speak for it (then the neighbours vote).
pub fn from_model(
    heads: &Heads,
    head: &Head,
    e: &[f32],
    counts: &HashMap<String, u64>,
) -> Option<Prediction> {
    let labelled: u64 = counts.values().sum();
    if labelled == 0 {
        return None;
    }
    let lower: Vec<String> = head.classes.iter().map(|c| c.to_lowercase()).collect();
    let covered: u64 = lower.iter().filter_map(|c| counts.get(c)).sum();
    if (covered as f64) < MIN_COVERAGE * labelled as f64 {
        return None;
    }
    let p = heads.probabilities(head, e);
    let mut dist = BTreeMap::new();
    let mut names = BTreeMap::new();
    for ((class, low), p) in head.classes.iter().zip(lower).zip(p) {
        if counts.contains_key(&low) {
            names.insert(low.clone(), class.clone());
            *dist.entry(low).or_insert(0.0) += p;
        }
    }
    let total: f32 = dist.values().sum();
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    dist.values_mut().for_each(|p| *p /= total);
    Prediction::from_dist(&head.column, dist, &names, Source::Model)
}

/// A vote of the nearest items (`(score, metadata)`, best first) for `column`: each
/// weighs exp((score - best) / T), so that near-copies count more than the tail.
pub fn from_neighbours<'a>(
    column: &str,
    neighbours: impl IntoIterator<Item = (f32, &'a BTreeMap<String, String>)>,
) -> Option<Prediction> {
    let voters: Vec<(f32, &str)> = neighbours
        .into_iter()
        .take(VOTERS)
        .filter_map(|(score, md)| Some((score, md.get(column)?.trim())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let top = voters.iter().map(|(s, _)| *s).fold(f32::NEG_INFINITY, f32::max);
    let mut dist: BTreeMap<String, f32> = BTreeMap::new();
    let mut names = BTreeMap::new();
    let mut total = 0.0;
    for (score, v) in voters {
        let w = ((score - top) / VOTE_TEMPERATURE).exp();
        total += w;
        let low = v.to_lowercase();
        names.entry(low.clone()).or_insert_with(|| v.to_string());
        *dist.entry(low).or_insert(0.0) += w;
    }
    if total.is_nan() || total <= 0.0 {
        return None;
    }
    dist.values_mut().for_each(|p| *p /= total);
    Prediction::from_dist(column, dist, &names, Source::Neighbours)
}

/// The model's share when its prediction and the neighbours' vote are averaged.
pub const MODEL_WEIGHT: f32 = 0.5;

/// The model's prediction and the nearest items' vote, averaged: the classifier knows
/// the kinds of garment in general, the neighbours' labels know this catalogue (and a
/// near-copy of the photo in it outvotes the rest, so a product's own photo keeps it
/// first). Either alone when the other is missing.
pub fn combine(model: Option<Prediction>, vote: Option<Prediction>) -> Option<Prediction> {
    let (m, v) = match (model, vote) {
        (Some(m), Some(v)) => (m, v),
        (m, v) => return m.or(v),
    };
    let mut dist: BTreeMap<String, f32> = BTreeMap::new();
    for (value, p) in &m.dist {
        *dist.entry(value.clone()).or_insert(0.0) += MODEL_WEIGHT * p;
    }
    for (value, p) in &v.dist {
        *dist.entry(value.clone()).or_insert(0.0) += (1.0 - MODEL_WEIGHT) * p;
    }
    // The catalogue's spelling where the vote saw it, else the model's.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    names.insert(m.value.to_lowercase(), m.value.clone());
    names.insert(v.value.to_lowercase(), v.value.clone());
    Prediction::from_dist(&m.column, dist, &names, Source::Both)
}

/// How much the predicted categories count in a query's ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shares {
    pub article_type: f32,
    pub colour: f32,
}

impl Shares {
    /// The defaults, scaled so that the article type gets `type_share` (0: off).
    pub fn scaled(type_share: f32) -> Self {
        Self {
            article_type: type_share,
            colour: type_share * DEFAULT_COLOUR_SHARE / DEFAULT_TYPE_SHARE,
        }
    }

    pub fn is_off(&self) -> bool {
        self.article_type <= 0.0 && self.colour <= 0.0
    }

    fn of(&self, column: &str, first: bool) -> f32 {
        // The first column predicted is the kind of garment; any other is its colour.
        if first || column == VOTE_COLUMN { self.article_type } else { self.colour }
    }
}

/// The predictions a query is ranked with, each with its share of the score.
#[derive(Debug, Clone, Default)]
pub struct Ranking {
    parts: Vec<(Prediction, f32)>,
}

impl Ranking {
    pub fn new(predictions: &[Prediction], shares: Shares) -> Self {
        let parts = predictions
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), shares.of(&p.column, i == 0)))
            .filter(|(_, s)| *s > 0.0)
            .collect();
        Self { parts }
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The blended score of an item whose similarity is `score`. An item without a value
    /// in a predicted column is neither favoured nor held back by it (its similarity
    /// stands in for the probability), so an unlabelled copy of the photo still comes first.
    pub fn score(&self, score: f32, metadata: &BTreeMap<String, String>) -> f32 {
        let mut out = score;
        for (p, share) in &self.parts {
            let q = match metadata.get(&p.column).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                Some(v) => p.probability_of(v),
                None => score,
            };
            out += share * (q - score);
        }
        out
    }

    /// The category worth searching within (column, value), when the first prediction is
    /// sure enough.
    pub fn within(&self) -> Option<(&str, &str)> {
        let (p, _) = self.parts.first()?;
        (p.probability >= WITHIN_MIN_PROBABILITY).then_some((p.column.as_str(), p.value.as_str()))
    }
}

/// After the blend (`ranked` sorted by blended score): the last of the first `k` places goes
/// to the item of highest `similarity` from there on (from [`KEEP_NEAREST_FROM_K`] results
/// on). Its blended score is at most the one it displaces, so the list stays sorted.
pub fn keep_nearest<T>(ranked: &mut Vec<T>, k: usize, similarity: impl Fn(&T) -> f32) {
    if k < KEEP_NEAREST_FROM_K || ranked.len() < k {
        return;
    }
    let best = ranked[k - 1..]
        .iter()
        .enumerate()
        .max_by(|a, b| similarity(a.1).total_cmp(&similarity(b.1)).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i);
    if let Some(at) = best.filter(|&i| i > 0) {
        let item = ranked.remove(k - 1 + at);
        ranked.insert(k - 1, item);
    }
}

/// Check a query's category share (0 turns category ranking off).
pub fn check_share(share: f32) -> Result<(), crate::error::Error> {
    if !(0.0..=MAX_SHARE).contains(&share) {
        return Err(crate::error::Error::BadParameter {
            name: "category",
            message: format!("{share} is not in 0..={MAX_SHARE}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads() -> Heads {
        let json = r#"{"format":1,"dim":2,"scale":10,"heads":[
            {"column":"articleType","output":"a","classes":["Tshirts","Shoes","Kurtas"],
             "proxies":[[1,0],[0,1],[-1,0]]},
            {"column":"baseColour","output":"c","classes":["Red","Blue"],"proxies":[[1,0],[0,1]]}]}"#;
        Heads::parse(json, Path::new("t.json")).unwrap()
    }

    fn md(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn probabilities_are_a_softmax_of_scaled_cosines() {
        let h = heads();
        let p = h.probabilities(&h.heads()[0], &[1.0, 0.0]);
        let e = [10f32.exp(), 1.0, (-10f32).exp()];
        let sum: f32 = e.iter().sum();
        for (got, want) in p.iter().zip(e) {
            assert!((got - want / sum).abs() < 1e-6);
        }
    }

    #[test]
    fn model_prediction_keeps_only_the_index_values_and_renormalises() {
        let h = heads();
        let head = h.head("articleType").unwrap();
        // The index has no t-shirts: the shoes take what is left.
        let counts: HashMap<String, u64> =
            [("shoes".to_string(), 3), ("kurtas".to_string(), 2)].into();
        let p = from_model(&h, head, &[0.6, 0.8], &counts).unwrap();
        assert_eq!((p.value.as_str(), p.source), ("Shoes", Source::Model));
        assert!((p.probability_of("SHOES") + p.probability_of("kurtas") - 1.0).abs() < 1e-6);
        assert_eq!(p.probability_of("tshirts"), 0.0);
        // Labels the model does not know: no model prediction.
        let other: HashMap<String, u64> =
            [("jumpers".to_string(), 5), ("shoes".to_string(), 1)].into();
        assert!(from_model(&h, head, &[1.0, 0.0], &other).is_none());
    }

    #[test]
    fn the_same_query_gets_the_same_probabilities_to_the_last_bit() {
        // Many classes whose probabilities are summed: a sum in hash order would differ
        // in its last bits from call to call (and so would the answers' JSON).
        let n = 40;
        let classes: Vec<String> = (0..n).map(|i| format!("\"c{i}\"")).collect();
        let proxies: Vec<String> = (0..n)
            .map(|i| {
                let a = i as f32 * 0.37;
                format!("[{},{}]", a.cos(), a.sin())
            })
            .collect();
        let json = format!(
            r#"{{"format":1,"dim":2,"scale":3,"heads":[{{"column":"articleType","classes":[{}],"proxies":[{}]}}]}}"#,
            classes.join(","),
            proxies.join(",")
        );
        let h = Heads::parse(&json, Path::new("t.json")).unwrap();
        let head = h.head("articleType").unwrap();
        let counts: HashMap<String, u64> = (0..n).map(|i| (format!("c{i}"), 1)).collect();
        let bits = |p: &Prediction| {
            (0..n).map(|i| p.probability_of(&format!("c{i}")).to_bits()).collect::<Vec<_>>()
        };
        let first = from_model(&h, head, &[0.3, 0.95], &counts).unwrap();
        for _ in 0..30 {
            let again = from_model(&h, head, &[0.3, 0.95], &counts).unwrap();
            assert_eq!(again.probability.to_bits(), first.probability.to_bits());
            assert_eq!(bits(&again), bits(&first));
            let both = combine(Some(again.clone()), Some(first.clone())).unwrap();
            assert_eq!(both.probability.to_bits(), first.probability.to_bits());
        }
    }

    #[test]
    fn neighbours_vote_with_their_scores() {
        let a = md(&[("articleType", "Jumper")]);
        let b = md(&[("articleType", "Cardigan")]);
        let none = md(&[]);
        let p = from_neighbours("articleType", [(0.95, &a), (0.94, &b), (0.5, &none), (0.93, &b)])
            .unwrap();
        // Two cardigans a little further away outweigh one jumper (e^-0.2 + e^-0.4 > 1).
        assert_eq!(p.value, "Cardigan");
        assert_eq!(p.source, Source::Neighbours);
        assert!((p.probability_of("jumper") + p.probability_of("cardigan") - 1.0).abs() < 1e-6);
        assert!(from_neighbours("articleType", [(0.9, &none)]).is_none());
    }

    #[test]
    fn model_and_vote_are_averaged() {
        let h = heads();
        let counts: HashMap<String, u64> =
            [("tshirts".to_string(), 4), ("shoes".to_string(), 4)].into();
        // The model is sure of t-shirts; an exact copy labelled Shoes leads the vote.
        let model = from_model(&h, h.head("articleType").unwrap(), &[1.0, 0.0], &counts);
        let shoe = md(&[("articleType", "Shoes")]);
        let shirt = md(&[("articleType", "Tshirts")]);
        let vote = from_neighbours("articleType", [(1.0, &shoe), (0.8, &shirt), (0.8, &shirt)]);
        let both = combine(model.clone(), vote.clone()).unwrap();
        assert_eq!(both.source, Source::Both);
        let (m, v) = (model.unwrap(), vote.unwrap());
        for value in ["tshirts", "shoes"] {
            let want = MODEL_WEIGHT * m.probability_of(value)
                + (1.0 - MODEL_WEIGHT) * v.probability_of(value);
            assert!((both.probability_of(value) - want).abs() < 1e-6);
        }
        assert_eq!(combine(None, Some(v.clone())).unwrap().source, Source::Neighbours);
        assert!(combine(None, None).is_none());
    }

    #[test]
    fn ranking_blends_similarity_with_the_category_probability() {
        let h = heads();
        let counts: HashMap<String, u64> =
            [("tshirts".to_string(), 1), ("shoes".to_string(), 1)].into();
        let p = from_model(&h, h.head("articleType").unwrap(), &[0.0, 1.0], &counts).unwrap();
        let r = Ranking::new(std::slice::from_ref(&p), Shares::scaled(0.3));
        let shoe = md(&[("articleType", "Shoes")]);
        let shirt = md(&[("articleType", "Tshirts")]);
        // A closer t-shirt loses to a shoe when the photo surely shows shoes.
        assert!(r.score(0.6, &shoe) > r.score(0.8, &shirt));
        let expect = 0.7 * 0.6 + 0.3 * p.probability_of("shoes");
        assert!((r.score(0.6, &shoe) - expect).abs() < 1e-6);
        assert_eq!(r.within(), Some(("articleType", "Shoes")));
        // An item without the column ranks by its similarity alone.
        assert_eq!(r.score(0.77, &md(&[])), 0.77);
        assert_eq!(r.score(0.77, &md(&[("articleType", " ")])), 0.77);
        // Share 0: the similarity alone.
        let off = Ranking::new(&[p], Shares::scaled(0.0));
        assert!(off.is_empty());
        assert_eq!(off.score(0.8, &shirt), 0.8);
    }

    #[test]
    fn the_last_place_goes_to_the_most_similar_item_not_shown_before() {
        // (id, similarity), sorted by blended score.
        let ranked = || vec![(1, 0.5), (2, 0.4), (3, 0.3), (4, 0.35), (5, 0.2), (6, 0.9), (7, 0.1)];
        let sim = |x: &(u32, f32)| x.1;
        let ids = |r: &[(u32, f32)]| r.iter().map(|x| x.0).collect::<Vec<_>>();
        // 6, the most similar, was pushed to the 6th place: it takes the 5th.
        let mut r = ranked();
        keep_nearest(&mut r, 5, sim);
        assert_eq!(ids(&r), [1, 2, 3, 4, 6, 5, 7]);
        // With four places, 6 takes the 4th.
        let mut r = ranked();
        keep_nearest(&mut r, 4, sim);
        assert_eq!(ids(&r), [1, 2, 3, 6, 4, 5, 7]);
        // The last place already holds the most similar of the rest: nothing moves.
        let mut r = vec![(1, 0.5), (2, 0.4), (3, 0.9), (4, 0.1)];
        keep_nearest(&mut r, 3, sim);
        assert_eq!(ids(&r), [1, 2, 3, 4]);
        // A short list stays the category's; fewer candidates than places: as they are.
        let mut r = ranked();
        keep_nearest(&mut r, KEEP_NEAREST_FROM_K - 1, sim);
        assert_eq!(ids(&r), ids(&ranked()));
        let mut r = vec![(1, 0.1), (2, 0.9)];
        keep_nearest(&mut r, 5, sim);
        assert_eq!(ids(&r), [1, 2]);
    }

    #[test]
    fn bad_heads_files_are_named() {
        let bad = |s: &str| Heads::parse(s, Path::new("h.json")).unwrap_err().to_string();
        assert!(bad("{").contains("h.json"));
        assert!(bad(r#"{"format":2,"dim":2,"scale":1,"heads":[]}"#).contains("format 2"));
        let not_unit = r#"{"format":1,"dim":2,"scale":1,"heads":[{"column":"a","classes":["x"],"proxies":[[2,0]]}]}"#;
        assert!(bad(not_unit).contains("unit vector"));
        let short = r#"{"format":1,"dim":2,"scale":1,"heads":[{"column":"a","classes":["x","y"],"proxies":[[1,0]]}]}"#;
        assert!(bad(short).contains("2 classes and 1 proxies"));
        assert!(check_share(0.95).is_err() && check_share(0.3).is_ok());
    }
}
