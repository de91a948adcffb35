//! "More like these, less like that": a search from liked and disliked examples (items
//! of the index or photos), and the "no close match" call on a photo query's results.

use super::{Answer, Engine, MAX_K, Query};
use crate::error::{Error, Result};

/// Most examples (liked and disliked together) one recommendation takes.
pub const MAX_EXAMPLES: usize = 64;

/// How much the disliked examples' mean is taken away from the liked ones' (Rocchio's
/// γ/β; Qdrant's "average vector" strategy uses 1, which lets a single dislike outweigh
/// the likes' shared look on this model's tight clusters).
const UNLIKE_WEIGHT: f32 = 0.5;

/// The lengths an example vector may have: those of stored vectors (1) and of the
/// vectors `/api/embed` gives (near 1), with room to spare, and nothing else.
const MIN_EXAMPLE_NORM: f32 = 0.5;
const MAX_EXAMPLE_NORM: f32 = 1.5;

/// One liked or disliked example.
#[derive(Debug, Clone)]
pub enum Example {
    /// An item of the index, by id (left out of the results).
    Item(String),
    /// A vector comparable with the stored ones: a photo's as it is searched by
    /// ([`Engine::compared_vector`], `/api/embed`), or a stored one.
    Vector(Vec<f32>),
}

impl Engine {
    /// Items like the liked examples and unlike the disliked ones: the liked vectors' mean
    /// less half the disliked ones' mean, scaled back to the liked vectors' length so that
    /// scores keep their meaning, searched with `q`; the examples that are items are left
    /// out of the results.
    pub fn recommend(&self, like: &[Example], unlike: &[Example], q: &Query) -> Result<Answer> {
        Self::check_k(q.k)?;
        if like.is_empty() {
            return Err(Error::BadParameter {
                name: "like",
                message: "give at least one liked item or photo".into(),
            });
        }
        if like.len() + unlike.len() > MAX_EXAMPLES {
            return Err(Error::BadParameter {
                name: "like",
                message: format!(
                    "{} examples given; at most {MAX_EXAMPLES} are taken",
                    like.len() + unlike.len()
                ),
            });
        }
        let mut excluded = std::collections::HashSet::new();
        let mut mean = |examples: &[Example]| -> Result<Option<(Vec<f32>, f32)>> {
            let dim = self.info.dim;
            let mut sum = vec![0.0f32; dim];
            let mut length = 0.0f32;
            for e in examples {
                let item;
                let v: &[f32] = match e {
                    Example::Item(id) => {
                        let (stored, _, v) =
                            self.item(id)?.ok_or_else(|| Error::UnknownId(id.to_string()))?;
                        excluded.insert(stored);
                        item = v;
                        &item
                    }
                    Example::Vector(v) => {
                        if v.len() != dim || v.iter().any(|x| !x.is_finite()) {
                            return Err(Error::BadParameter {
                                name: "vector",
                                message: format!(
                                    "an example vector must hold {dim} finite numbers (as \
                                     /api/embed gives them for this index), got {}",
                                    v.len()
                                ),
                            });
                        }
                        // Stored vectors are unit length and /api/embed's near it (a
                        // snapshot's is rescaled without its colour part): one far from 1
                        // is not such a vector, and would scale every score with it (a
                        // length of 1e9 gave scores of 1e18); one of length 0 has no
                        // direction at all.
                        let norm = crate::kernel::dot(v, v).sqrt();
                        if !(MIN_EXAMPLE_NORM..=MAX_EXAMPLE_NORM).contains(&norm) {
                            return Err(Error::BadParameter {
                                name: "vector",
                                message: format!(
                                    "an example vector must have a length near 1 \
                                     ({MIN_EXAMPLE_NORM} to {MAX_EXAMPLE_NORM}, as /api/embed \
                                     gives them), got {norm}"
                                ),
                            });
                        }
                        v
                    }
                };
                length += crate::kernel::dot(v, v).sqrt();
                sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
            }
            if examples.is_empty() {
                return Ok(None);
            }
            let n = examples.len() as f32;
            sum.iter_mut().for_each(|s| *s /= n);
            Ok(Some((sum, length / n)))
        };
        let Some((mut v, length)) = mean(like)? else {
            return Err(Error::BadParameter { name: "like", message: "no liked example".into() });
        };
        if let Some((neg, _)) = mean(unlike)? {
            v.iter_mut().zip(&neg).for_each(|(a, b)| *a -= UNLIKE_WEIGHT * b);
        }
        let norm = crate::kernel::dot(&v, &v).sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return Err(Error::BadParameter {
                name: "unlike",
                message: "the disliked examples cancel the liked ones out".into(),
            });
        }
        v.iter_mut().for_each(|a| *a *= length / norm);
        // One liked item is left out by the search itself, so that liking an item finds
        // what "similar to it" finds; with more, the search looks deeper by those that
        // could come back, then leaves them out.
        let single = if excluded.len() == 1 { excluded.iter().next().cloned() } else { None };
        let extra = if single.is_some() { 0 } else { excluded.len() };
        let (colour, trained) = self.settings(q, false)?;
        let deeper =
            Query { k: (q.k + extra).min(MAX_K), colour, keep_nearest: false, ..q.clone() };
        let v = self.query_vector(&v, deeper.colour)?;
        let mut answer = self.search_in(&self.view(), &v, &deeper, single.as_deref(), trained)?;
        answer.hits.retain(|h| !excluded.contains(&h.id));
        answer.hits.truncate(q.k);
        Ok(answer)
    }

    /// True when a photo query's best result scores below the model's calibrated floor.
    pub(super) fn weak(&self, answer: &Answer) -> bool {
        let floor = match &self.query_embedder {
            // Its scores against the fp32 catalogue, calibrated as the model's own.
            Some(_) => crate::model::query_twin(&self.info.model.name).map(|t| t.close_match),
            None => crate::model::close_match_floor(&self.info.model, &self.info.model_hash),
        };
        match floor {
            Some(floor) => answer.hits.first().is_none_or(|h| h.score < floor),
            None => false,
        }
    }
}
