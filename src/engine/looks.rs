//! Shop the look: every garment of a photo, each searched on its own. The garment finder
//! (a model of its own, loaded on first use) names the kind of garment in each cell of
//! the photo, [`crate::garment::find`] turns that into boxes, and each box's square is
//! searched as a crop of the photo (among the catalogue's items of its kind when the
//! finder is sure of it). The photo is also searched as every photo is (its largest
//! garment): that answer is the look's own, and the garment it was about, when the
//! finder found it too, reuses its vector rather than embedding it again.

use std::time::Instant;

use super::{Answer, Embedded, Engine, Query, Timing};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::garment::{self, Found, Kind};
use crate::model::ResizeMode;
use crate::preprocess::{self, Crop};

/// The side the garment finder runs at (the photo padded to a square).
pub const FINDER_SIZE: u32 = 256;

/// A found garment's square overlapping the square a photo's own search used this much
/// (intersection over union), when most of that search's results are of its kind, is
/// the garment the search was about. A studio shot of a model is searched whole, and
/// its square then covers far more than the garment (BENCHMARKS.md, "Every garment in
/// a photo": worn apparel 0.888 at 0.6, 0.913 at 0.3).
const SAME_GARMENT: f64 = 0.3;

/// One garment of a photo and its results.
#[derive(Debug, Clone)]
pub struct GarmentAnswer {
    pub kind: Kind,
    /// The finder's mean probability of that kind over the garment's cells.
    pub confidence: f32,
    /// Where it is, in pixels of the (upright) photo.
    pub region: Crop,
    /// Its search: the square around it, searched as a crop of the photo.
    pub answer: Answer,
}

/// Every garment of a photo, largest first, and the photo's own answer.
#[derive(Debug, Clone)]
pub struct Look {
    pub garments: Vec<GarmentAnswer>,
    pub answer: Answer,
    /// The photo's own query vector (given back with `vector=true`).
    pub embedded: Embedded,
    /// Time the finder took, in milliseconds.
    pub find_ms: f64,
}

impl Engine {
    fn finder(&self) -> Result<&Embedder> {
        let loaded = self.finder.get_or_init(|| {
            let model = crate::model::garment_finder().map_err(|e| crate::error::chain(&e))?;
            Embedder::with_parallelism(&model, self.backend, self.parallelism)
                .map_err(|e| crate::error::chain(&e))
        });
        loaded.as_ref().map_err(|e| Error::FinderUnavailable(e.clone()))
    }

    /// The garments in a decoded photo, largest first.
    pub fn find_garments(&self, img: &image::RgbImage) -> Result<Vec<Found>> {
        let finder = self.finder()?;
        let tensor = preprocess::tensor_at(img, finder.spec(), None, ResizeMode::Pad, FINDER_SIZE)?;
        let cells = finder.cells(&tensor, FINDER_SIZE)?;
        let (w, h) = img.dimensions();
        Ok(garment::find(&cells.values, cells.channels, cells.rows, cells.cols, w, h))
    }

    /// Search every garment of a photo given as file bytes (`q`'s options for each; a
    /// crop cannot be asked for: the garments are the crops).
    pub fn search_look(&self, bytes: &[u8], q: &Query) -> Result<Look> {
        Self::check_k(q.k)?;
        if q.crop.is_some() {
            return Err(Error::BadParameter {
                name: "crop",
                message: "every garment of a photo is searched by its own crop; leave crop out"
                    .into(),
            });
        }
        let t0 = Instant::now();
        let img = preprocess::decode(bytes)?;
        let t1 = Instant::now();
        let input = self.query_tensor(&img, q)?;
        let vector = self.embed_input(&input)?;
        let embedded = input.embedded(vector);
        let t2 = Instant::now();
        let mut answer = self.search_embedded(&embedded, q)?;
        let t3 = Instant::now();
        answer.timing = Timing {
            decode_ms: (t1 - t0).as_secs_f64() * 1e3,
            embed_ms: (t2 - t1).as_secs_f64() * 1e3,
            search_ms: (t3 - t2).as_secs_f64() * 1e3,
            rerank_ms: answer.timing.rerank_ms,
        };
        let found = self.find_garments(&img)?;
        let find_ms = t3.elapsed().as_secs_f64() * 1e3;
        let (w, h) = img.dimensions();
        let searched = embedded.garment.unwrap_or(Crop { x: 0, y: 0, w, h });
        // The garment the photo's own search was about: of the kind its results are, and
        // overlapping what it searched; its vector is that search's. (Without the kind,
        // a whole outfit's search, tops and trousers, was given to its shoes.)
        let own = found
            .iter()
            .map(|f| garment::iou(square_of(f, w, h), searched))
            .enumerate()
            .filter(|&(i, o)| o >= SAME_GARMENT && answer_is_of_kind(&answer, found[i].kind))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        let mut garments = Vec::with_capacity(found.len());
        for (i, f) in found.into_iter().enumerate() {
            let answer = if Some(i) == own {
                // The photo's own search was about it: its vector is that search's,
                // searched again only for its kind.
                let qg = Query { filter: self.kind_filter(&f, q), ..q.clone() };
                if qg.filter == q.filter {
                    answer.clone()
                } else {
                    self.search_embedded(&embedded, &qg)?
                }
            } else {
                let t = Instant::now();
                let crop = square_of(&f, w, h);
                // The last-place rule hedges a whole snapshot's category against being
                // wrong; a garment cut out by its kind is better served by the blend
                // alone (measured: BENCHMARKS.md, "Every garment in a photo").
                let qg = Query {
                    crop: Some(crop),
                    locate: Some(false),
                    filter: self.kind_filter(&f, q),
                    keep_nearest: false,
                    ..q.clone()
                };
                let input = self.query_tensor(&img, &qg)?;
                let vector = self.embed_input(&input)?;
                let e = input.embedded(vector);
                let t_embed = t.elapsed();
                let mut a = self.search_embedded(&e, &qg)?;
                // The square searched, as a located garment's is reported.
                a.garment = Some(crop);
                a.timing = Timing {
                    decode_ms: 0.0,
                    embed_ms: t_embed.as_secs_f64() * 1e3,
                    search_ms: (t.elapsed() - t_embed).as_secs_f64() * 1e3,
                    rerank_ms: a.timing.rerank_ms,
                };
                a
            };
            garments.push(GarmentAnswer {
                kind: f.kind,
                confidence: f.confidence,
                region: f.region,
                answer,
            });
        }
        Ok(Look { garments, answer, embedded, find_ms })
    }

    /// `q`'s filter, and for a garment the finder is sure of (unless `q` says not to)
    /// its kind ([`keep_to_kind`]).
    fn kind_filter(&self, f: &Found, q: &Query) -> crate::index::Filter {
        let wanted = q.kind_filter.unwrap_or(super::KIND_FILTER) && f.confidence >= SURE_OF_KIND;
        if wanted {
            keep_to_kind(q.filter.clone(), f.kind, &self.info.columns)
        } else {
            q.filter.clone()
        }
    }
}

/// `filter` kept to `kind`: its subCategory values, and for a kind that shares its
/// subCategory (outerwear in Topwear) its article types, each where the index has the
/// column and the filter does not already name it. Outerwear kept to Topwear alone got
/// T-shirts and shirts for a jacket (BENCHMARKS.md, "Every garment in a photo").
fn keep_to_kind(
    mut filter: crate::index::Filter,
    kind: Kind,
    columns: &[String],
) -> crate::index::Filter {
    let has = |name: &str| columns.iter().any(|c| c == name) && !filter.has_column(name);
    let (subs, types) = (has(SUB_CATEGORY), has(ARTICLE_TYPE));
    if subs {
        for value in kind.sub_categories() {
            filter.add(SUB_CATEGORY, value);
        }
    }
    if let (true, Some(values)) = (subs && types, kind.article_types()) {
        for value in values {
            filter.add(ARTICLE_TYPE, value);
        }
    }
    filter
}

/// A garment's results are kept to its kind only when the finder is this sure of it
/// (mean over its cells): a kind named wrongly would keep every result wrong.
const SURE_OF_KIND: f32 = 0.85;

/// The catalogue column a garment's kind is kept by.
const SUB_CATEGORY: &str = "subCategory";

/// The column that tells outerwear from the other Topwear.
const ARTICLE_TYPE: &str = "articleType";

/// A photo's own search was about a garment of a kind when at least this share of its
/// results are of it: a whole outfit's search, a mix of tops and trousers, is about none
/// (BENCHMARKS.md, "Every garment in a photo").
const MOSTLY_OF_KIND: f64 = 0.8;

/// Whether [`MOSTLY_OF_KIND`] of an answer's results (of those with a subCategory) are
/// of `kind`; true when none has the column (nothing says otherwise).
fn answer_is_of_kind(answer: &Answer, kind: Kind) -> bool {
    let subs: Vec<&str> =
        answer.hits.iter().filter_map(|h| h.metadata.get(SUB_CATEGORY)).map(|s| s.trim()).collect();
    let of_kind = subs.iter().filter(|s| kind.sub_categories().contains(s)).count();
    of_kind as f64 >= MOSTLY_OF_KIND * subs.len() as f64
}

/// The square a found garment is searched by.
fn square_of(f: &Found, width: u32, height: u32) -> Crop {
    let r = f.region;
    let (x0, y0) = (f64::from(r.x), f64::from(r.y));
    garment::square_around((x0, y0, x0 + f64::from(r.w), y0 + f64::from(r.h)), width, height)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Hit;

    fn answer(subs: &[Option<&str>]) -> Answer {
        let hits = subs
            .iter()
            .enumerate()
            .map(|(i, s)| Hit {
                id: i.to_string(),
                score: 0.5,
                metadata: s
                    .map(|s| (SUB_CATEGORY.to_string(), s.to_string()))
                    .into_iter()
                    .collect(),
            })
            .collect();
        Answer {
            hits,
            predicted: Vec::new(),
            garment: None,
            no_close_match: false,
            timing: Timing::default(),
        }
    }

    #[test]
    fn outerwear_is_kept_to_its_article_types_and_a_top_to_its_sub_category() {
        let columns: Vec<String> =
            [SUB_CATEGORY, ARTICLE_TYPE, "baseColour"].map(String::from).to_vec();
        let clauses = |kind, columns: &[String], filter| {
            keep_to_kind(filter, kind, columns).clauses().to_vec()
        };
        let none = crate::index::Filter::default();
        let jackets = clauses(Kind::Outerwear, &columns, none.clone());
        assert_eq!(jackets[0], (SUB_CATEGORY.to_string(), vec!["topwear".to_string()]));
        assert_eq!(jackets[1].0, ARTICLE_TYPE);
        assert!(
            jackets[1].1.contains(&"blazers".to_string())
                && !jackets[1].1.contains(&"tshirts".to_string())
        );
        assert_eq!(clauses(Kind::Top, &columns, none.clone()).len(), 1, "a top is any Topwear");
        assert_eq!(
            clauses(Kind::Shoes, &columns, none.clone())[0].1,
            ["shoes", "sandal", "flip flops"]
        );
        // An index without the columns, or a query that already names one, is left alone.
        assert!(clauses(Kind::Outerwear, &columns[2..], none.clone()).is_empty());
        let mut own = crate::index::Filter::default();
        own.add(ARTICLE_TYPE, "Shirts");
        let kept = clauses(Kind::Outerwear, &columns, own);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0], (ARTICLE_TYPE.to_string(), vec!["shirts".to_string()]));
        assert_eq!(kept[1].0, SUB_CATEGORY);
    }

    #[test]
    fn an_answer_is_of_a_kind_when_four_results_in_five_are() {
        let tops = answer(&[Some("Topwear"); 5]);
        assert!(answer_is_of_kind(&tops, Kind::Top));
        assert!(answer_is_of_kind(&tops, Kind::Outerwear), "outerwear is Topwear too");
        assert!(!answer_is_of_kind(&tops, Kind::Shoes));
        let four = answer(&[
            Some("Topwear"),
            Some("Topwear"),
            Some("Topwear"),
            Some("Topwear"),
            Some("Bottomwear"),
        ]);
        assert!(answer_is_of_kind(&four, Kind::Top));
        let mixed = answer(&[
            Some("Topwear"),
            Some("Topwear"),
            Some("Bottomwear"),
            Some("Topwear"),
            Some("Bottomwear"),
        ]);
        assert!(!answer_is_of_kind(&mixed, Kind::Top) && !answer_is_of_kind(&mixed, Kind::Bottom));
        // Sandals are shoes; results without the column do not count either way.
        let shoes = answer(&[Some("Shoes"), Some("Sandal"), None, None, Some("Flip Flops")]);
        assert!(answer_is_of_kind(&shoes, Kind::Shoes));
        assert!(answer_is_of_kind(&answer(&[None, None]), Kind::Hat), "no column: nothing says no");
    }
}
