//! The read path: a query vector's candidates from the planner (and from within the
//! predicted category), re-ordered by the trained projection and by the category, then
//! the score floor and near-duplicate collapsing; what the query looks like.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::ranking::{self, Candidates, Ranked, Steps};
use super::{Answer, Embedded, Engine, MAX_EXPAND, Query};
use crate::category::{self, Prediction};
use crate::error::{Error, Result};
use crate::index::{Hit, VectorIndex};
use crate::projection::Trained;

/// A search's candidates: the in-memory index's (through the planner, the query's filter
/// and mode), predicted by the engine, re-scored by the projection's cache.
struct IndexQuery<'a> {
    engine: &'a Engine,
    index: &'a VectorIndex,
    v: &'a [f32],
    q: &'a Query,
    exclude: Option<u32>,
    trained: Option<Trained<'a>>,
    /// When the first candidates came back: re-ranking is timed from there.
    started: std::cell::Cell<Option<std::time::Instant>>,
}

impl Candidates for IndexQuery<'_> {
    type Item = Hit;

    fn nearest(&self, depth: usize, within: Option<(&str, &str)>) -> Result<Vec<Hit>> {
        let hits = match within {
            None => self.index.search(self.v, depth, &self.q.filter, self.exclude, self.q.mode)?,
            Some((column, value)) => {
                let mut filter = self.q.filter.clone();
                filter.add(column, value);
                self.index.search(self.v, depth, &filter, self.exclude, self.q.mode)?
            }
        };
        if self.started.get().is_none() {
            self.started.set(Some(std::time::Instant::now()));
        }
        Ok(hits)
    }

    fn predict(&self, candidates: &[Hit], asked: bool) -> Vec<Prediction> {
        let neighbours = candidates.iter().map(|h| (h.score, &h.metadata));
        self.engine.predict(&|c| self.index.value_counts(c), self.v, neighbours, asked)
    }

    fn rescore(&self, hits: &mut [Hit]) -> bool {
        let Some((projection, mix)) = self.trained else { return false };
        let candidates: Vec<(u32, &[f32], f32)> = hits
            .iter()
            .filter_map(|h| {
                let key = self.index.key_of(&h.id)?;
                Some((key, self.index.vector(key)?, h.score))
            })
            .collect();
        // Every hit comes from this snapshot, so each has its vector; were one missing,
        // the stored order stands rather than a re-order of a part.
        if candidates.len() != hits.len() {
            return false;
        }
        let scores = projection.rescore_items(&self.engine.projected, self.v, &candidates, mix);
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
        let index = self.index();
        let key = index.key_of(id).ok_or_else(|| Error::UnknownId(id.to_string()))?;
        let v = index.vector(key).ok_or_else(|| Error::UnknownId(id.to_string()))?;
        let (colour, trained) = self.settings(q, false)?;
        // A catalogue item's predictions are surer: its places stay the blend's.
        let q = &Query { colour, keep_nearest: false, ..q.clone() };
        let v = self.query_vector(v, q.colour)?;
        let v = self.expanded(&index, v, q, Some(key))?;
        self.search_in(&index, &v, q, Some(key), trained)
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
        let index = self.index();
        let (colour, trained) = self.settings(q, snapshot)?;
        // The last-place rule is for snapshots, whose predictions are the least sure.
        let q = &Query { colour, keep_nearest: q.keep_nearest && snapshot, ..q.clone() };
        let v = self.query_vector(v, q.colour)?;
        let v = self.expanded(&index, v, q, None)?;
        self.search_in(&index, &v, q, None, trained)
    }

    /// Query expansion (`q.expand`): the query plus the vectors (in the query's colour
    /// weighting) of its best results, scaled back to the query's length so that scores
    /// keep their meaning.
    fn expanded(
        &self,
        index: &VectorIndex,
        v: Vec<f32>,
        q: &Query,
        exclude: Option<u32>,
    ) -> Result<Vec<f32>> {
        let Some(n) = q.expand.filter(|&n| n > 0) else { return Ok(v) };
        if n > MAX_EXPAND {
            return Err(Error::BadParameter {
                name: "expand",
                message: format!("{n} is not in 0..={MAX_EXPAND}"),
            });
        }
        let first = index.search(&v, n, &q.filter, exclude, q.mode)?;
        let mut e = v.clone();
        for h in &first {
            if let Some(hv) = index.key_of(&h.id).and_then(|key| index.vector(key)) {
                for (a, b) in e.iter_mut().zip(self.query_vector(hv, q.colour)?) {
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
        index: &VectorIndex,
        v: &[f32],
        q: &Query,
        exclude: Option<u32>,
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
            IndexQuery { engine: self, index, v, q, exclude, trained, started: None.into() };
        let Ranked { mut hits, predicted } =
            ranking::rank(&source, &steps, &|c| q.filter.has_column(c))?;
        let rerank_start = source.started.get().unwrap_or_else(std::time::Instant::now);
        if let Some(limit) = q.collapse {
            let mut kept: Vec<&[f32]> = Vec::with_capacity(q.k);
            let mut out = Vec::with_capacity(q.k);
            for h in hits {
                if out.len() == q.k {
                    break;
                }
                let Some(hv) = index.key_of(&h.id).and_then(|key| index.vector(key)) else {
                    continue;
                };
                if kept.iter().any(|kv| crate::kernel::dot(kv, hv) >= limit) {
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
