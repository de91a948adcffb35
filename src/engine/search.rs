//! The read path: a query vector's candidates from the planner (and from within the
//! predicted category), re-ordered by the trained projection and by the category, then
//! the score floor and near-duplicate collapsing; what the query looks like.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::ranking::{self, Candidates, Ranked, Steps};
use super::{Answer, Embedded, Engine, MAX_EXPAND, Query};
use crate::category::{self, Prediction};
use crate::error::{Error, Result};
use crate::index::{Filter, Hit, SearchMode, VectorIndex};
use crate::projection::{ProjectedCache, Trained};
use crate::store::ItemReads;

/// Where a search finds its candidates and their vectors: the engine's snapshot, or its
/// store (an engine without a snapshot), whose found vectors are kept for the query's
/// re-ranking, collapsing and expansion.
pub(super) enum View<'a> {
    Snapshot(Arc<VectorIndex>),
    Store { reads: &'a dyn ItemReads, vectors: RefCell<HashMap<String, Vec<f32>>> },
}

impl View<'_> {
    /// The `k` nearest items passing `filter` (`exclude`, an id as stored, left out),
    /// best first; from the store, re-scored by the exact kernel so that a score is the
    /// same number as a snapshot's.
    pub(super) fn search(
        &self,
        v: &[f32],
        k: usize,
        filter: &Filter,
        exclude: Option<&str>,
        mode: SearchMode,
    ) -> Result<Vec<Hit>> {
        match self {
            View::Snapshot(index) => {
                let key = exclude.and_then(|id| index.key_of(id));
                index.search(v, k, filter, key, mode)
            }
            View::Store { reads, vectors } => {
                let found = reads.nearest_items(v, k, filter.clauses(), exclude)?;
                let mut vectors = vectors.borrow_mut();
                let mut hits: Vec<Hit> = found
                    .into_iter()
                    .filter(|f| f.vector.len() == v.len())
                    .map(|f| {
                        let score = crate::kernel::dot(v, &f.vector);
                        vectors.insert(f.id.clone(), f.vector);
                        Hit { id: f.id, score, metadata: f.record.metadata }
                    })
                    .collect();
                hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
                Ok(hits)
            }
        }
    }

    /// A found item's vector (a snapshot's: any item's).
    pub(super) fn vector(&self, id: &str) -> Option<Vec<f32>> {
        match self {
            View::Snapshot(index) => {
                index.key_of(id).and_then(|k| index.vector(k)).map(<[f32]>::to_vec)
            }
            View::Store { vectors, .. } => vectors.borrow().get(id).cloned(),
        }
    }
}

/// A candidate the projection re-scores: a key its cache knows it by, its vector, its
/// score.
type Projectable = (u32, Vec<f32>, f32);

/// A search's candidates: the view's (the query's filter and mode), predicted by the
/// engine, re-scored by the projection.
struct IndexQuery<'a> {
    engine: &'a Engine,
    view: &'a View<'a>,
    v: &'a [f32],
    q: &'a Query,
    exclude: Option<&'a str>,
    trained: Option<Trained<'a>>,
    /// When the first candidates came back: re-ranking is timed from there.
    started: std::cell::Cell<Option<std::time::Instant>>,
}

impl Candidates for IndexQuery<'_> {
    type Item = Hit;

    fn nearest(&self, depth: usize, within: Option<(&str, &str)>) -> Result<Vec<Hit>> {
        let hits = match within {
            None => self.view.search(self.v, depth, &self.q.filter, self.exclude, self.q.mode)?,
            Some((column, value)) => {
                let mut filter = self.q.filter.clone();
                filter.add(column, value);
                self.view.search(self.v, depth, &filter, self.exclude, self.q.mode)?
            }
        };
        if self.started.get().is_none() {
            self.started.set(Some(std::time::Instant::now()));
        }
        Ok(hits)
    }

    fn predict(&self, candidates: &[Hit], asked: bool) -> Vec<Prediction> {
        let neighbours = candidates.iter().map(|h| (h.score, &h.metadata));
        self.engine.predict(&|c| self.engine.value_counts(c), self.v, neighbours, asked)
    }

    fn rescore(&self, hits: &mut [Hit]) -> bool {
        let Some((projection, mix)) = self.trained else { return false };
        let (index, fresh);
        let (cache, candidates): (&ProjectedCache, Vec<Projectable>) = match self.view {
            View::Snapshot(i) => {
                index = i;
                let c = hits
                    .iter()
                    .filter_map(|h| {
                        let key = index.key_of(&h.id)?;
                        Some((key, index.vector(key)?.to_vec(), h.score))
                    })
                    .collect();
                (&self.engine.projected, c)
            }
            // Without a snapshot there are no keys to cache projections by: each query
            // projects its own candidates.
            View::Store { vectors, .. } => {
                fresh = ProjectedCache::default();
                let vectors = vectors.borrow();
                let c = hits
                    .iter()
                    .enumerate()
                    .filter_map(|(i, h)| Some((i as u32, vectors.get(&h.id)?.clone(), h.score)))
                    .collect();
                (&fresh, c)
            }
        };
        // Every hit came from this view, so each has its vector; were one missing, the
        // stored order stands rather than a re-order of a part.
        if candidates.len() != hits.len() {
            return false;
        }
        let borrowed: Vec<(u32, &[f32], f32)> =
            candidates.iter().map(|(k, v, s)| (*k, v.as_slice(), *s)).collect();
        let scores = projection.rescore_items(cache, self.v, &borrowed, mix);
        for (h, s) in hits.iter_mut().zip(scores) {
            h.score = s;
        }
        true
    }
}

impl Engine {
    /// What a vector (stored form, any colour weight) looks like, per column the index
    /// can predict: the model's heads (where its classes are the catalogue's) averaged
    /// with a vote of `neighbours` (the plain search's best), or the vote alone. Without
    /// heads, only a query that asks for category ranking gets a (voted) article type.
    pub fn predict<'m>(
        &self,
        counts: &dyn Fn(&str) -> Arc<HashMap<String, u64>>,
        v: &[f32],
        neighbours: impl Iterator<Item = (f32, &'m BTreeMap<String, String>)> + Clone,
        asked: bool,
    ) -> Vec<Prediction> {
        let columns = &self.info.columns;
        let heads = self.heads().ok().flatten();
        let wanted: Vec<&str> = match heads {
            Some(h) => h.heads().iter().map(|h| h.column()).collect(),
            None if asked => vec![category::VOTE_COLUMN],
            None => Vec::new(),
        };
        let model_dim = self.info.model.dim.min(v.len());
        let mut e = v[..model_dim].to_vec();
        let unit = crate::embed::normalise(&mut e).is_ok();
        let mut out = Vec::new();
        for column in wanted.into_iter().filter(|c| columns.iter().any(|k| k == c)) {
            let from_model = heads
                .filter(|_| unit)
                .and_then(|h| Some((h, h.head(column)?)))
                .and_then(|(h, head)| category::from_model(h, head, &e, &counts(column)));
            let p = category::combine(
                from_model,
                category::from_neighbours(column, neighbours.clone()),
            );
            out.extend(p);
        }
        out
    }

    /// Items most similar to an indexed item, the item itself left out.
    pub fn similar_to(&self, id: &str, q: &Query) -> Result<Vec<Hit>> {
        Ok(self.similar_answer(id, q)?.hits)
    }

    /// [`Engine::similar_to`] with what the item looks like.
    pub fn similar_answer(&self, id: &str, q: &Query) -> Result<Answer> {
        Self::check_k(q.k)?;
        let (id, _, v) = self.item(id)?.ok_or_else(|| Error::UnknownId(id.to_string()))?;
        let (colour, trained) = self.settings(q, false)?;
        // A catalogue item's predictions are surer: its places stay the blend's.
        let q = &Query { colour, keep_nearest: false, ..q.clone() };
        let v = self.query_vector(&v, q.colour)?;
        let view = self.view();
        let v = self.expanded(&view, v, q, Some(&id))?;
        self.search_in(&view, &v, q, Some(&id), trained)
    }

    /// Search with an embedded query photo. A snapshot that does not say how much colour
    /// counts is searched by shape alone when its colour is its square's, which is mostly
    /// background (street photos, precision@5: 0.561 shape only, 0.547 at colour 0.3;
    /// BENCHMARKS.md), and with [`super::SNAPSHOT_COLOUR`] when it is its garment's.
    pub fn search_embedded(&self, e: &Embedded, q: &Query) -> Result<Answer> {
        let mut answer = self.search_with(&e.vector, &self.photo_query(e, q), e.snapshot)?;
        answer.garment = e.garment;
        answer.no_close_match = self.weak(&answer);
        Ok(answer)
    }

    /// The options a photo is searched with: a snapshot that does not say how much colour
    /// counts gets shape alone, or its garment's colour at [`super::SNAPSHOT_COLOUR`].
    fn photo_query(&self, e: &Embedded, q: &Query) -> Query {
        if e.snapshot && q.colour.is_none() && self.info.colour_weight > 0.0 {
            let colour = if e.garment_colour { super::SNAPSHOT_COLOUR } else { 0.0 };
            Query { colour: Some(colour), ..q.clone() }
        } else {
            q.clone()
        }
    }

    /// The vector a photo is compared with the catalogue by ([`Engine::search_embedded`]):
    /// its stored form reweighted for the colour the search uses (a snapshot's colour left
    /// out, unless asked). Its dot product with an item's stored vector is their
    /// similarity; given back as a liked example, it searches as the photo did.
    pub fn compared_vector(&self, e: &Embedded, q: &Query) -> Result<Vec<f32>> {
        let q = self.photo_query(e, q);
        let (colour, _) = self.settings(&q, e.snapshot)?;
        self.query_vector(&e.vector, colour)
    }

    /// Search with a ready vector (as stored: the index's colour weight), taken for a
    /// catalogue item's or a studio shot's.
    pub fn search_vector(&self, v: &[f32], q: &Query) -> Result<Vec<Hit>> {
        Ok(self.search_with(v, q, false)?.hits)
    }

    fn search_with(&self, v: &[f32], q: &Query, snapshot: bool) -> Result<Answer> {
        Self::check_k(q.k)?;
        let (colour, trained) = self.settings(q, snapshot)?;
        // The last-place rule is for snapshots, whose predictions are the least sure.
        let q = &Query { colour, keep_nearest: q.keep_nearest && snapshot, ..q.clone() };
        let v = self.query_vector(v, q.colour)?;
        let view = self.view();
        let v = self.expanded(&view, v, q, None)?;
        self.search_in(&view, &v, q, None, trained)
    }

    /// Where this engine's searches find candidates: its store, when it holds no
    /// snapshot, else the current snapshot.
    pub(super) fn view(&self) -> View<'_> {
        match self.in_store() {
            Some(reads) => View::Store { reads, vectors: RefCell::default() },
            None => View::Snapshot(self.index()),
        }
    }

    /// Query expansion (`q.expand`): the query plus the vectors (in the query's colour
    /// weighting) of its best results, scaled back to the query's length so that scores
    /// keep their meaning.
    fn expanded(
        &self,
        view: &View<'_>,
        v: Vec<f32>,
        q: &Query,
        exclude: Option<&str>,
    ) -> Result<Vec<f32>> {
        let Some(n) = q.expand.filter(|&n| n > 0) else { return Ok(v) };
        if n > MAX_EXPAND {
            return Err(Error::BadParameter {
                name: "expand",
                message: format!("{n} is not in 0..={MAX_EXPAND}"),
            });
        }
        let first = view.search(&v, n, &q.filter, exclude, q.mode)?;
        let mut e = v.clone();
        for h in &first {
            if let Some(hv) = view.vector(&h.id) {
                for (a, b) in e.iter_mut().zip(self.query_vector(&hv, q.colour)?) {
                    *a += b;
                }
            }
        }
        let norm = |x: &[f32]| crate::kernel::dot(x, x).sqrt();
        let (nv, ne) = (norm(&v), norm(&e));
        if ne > 0.0 && ne.is_finite() {
            e.iter_mut().for_each(|a| *a *= nv / ne);
        }
        Ok(e)
    }

    /// The planner's top k, ranked by [`ranking::rank`] (the trained projection, the
    /// predicted category, the score floor, the last place), then near-duplicate
    /// collapsing.
    pub(super) fn search_in(
        &self,
        view: &View<'_>,
        v: &[f32],
        q: &Query,
        exclude: Option<&str>,
        trained: Option<Trained<'_>>,
    ) -> Result<Answer> {
        for (name, value, range) in
            [("min-score", q.min_score, -1.0..=1.0), ("collapse", q.collapse, 0.0..=1.0)]
        {
            if let Some(x) = value.filter(|x| !range.contains(x)) {
                return Err(Error::BadParameter {
                    name,
                    message: format!("{x} is not in {}..={}", range.start(), range.end()),
                });
            }
        }
        let steps = Steps {
            k: q.k,
            collapse: q.collapse.is_some(),
            trained: trained.is_some(),
            category: self.category_shares(q)?,
            keep_nearest: q.keep_nearest,
            min_score: q.min_score,
        };
        let source =
            IndexQuery { engine: self, view, v, q, exclude, trained, started: None.into() };
        let Ranked { mut hits, predicted } =
            ranking::rank(&source, &steps, &|c| q.filter.has_column(c))?;
        let rerank_start = source.started.get().unwrap_or_else(std::time::Instant::now);
        if let Some(limit) = q.collapse {
            let mut kept: Vec<Vec<f32>> = Vec::with_capacity(q.k);
            let mut out = Vec::with_capacity(q.k);
            for h in hits {
                if out.len() == q.k {
                    break;
                }
                let Some(hv) = view.vector(&h.id) else {
                    continue;
                };
                if kept.iter().any(|kv| crate::kernel::dot(kv, &hv) >= limit) {
                    continue;
                }
                kept.push(hv);
                out.push(h);
            }
            hits = out;
        }
        hits.truncate(q.k);
        let timing = super::Timing {
            rerank_ms: rerank_start.elapsed().as_secs_f64() * 1e3,
            ..super::Timing::default()
        };
        Ok(Answer { hits, predicted, timing, ..Answer::default() })
    }
}
