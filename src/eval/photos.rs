//! Outside photos (shopper snapshots) as queries: a CSV names each photo and the article
//! types that count as a match; each is searched through the engine, as `search` would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::metrics::{Acc, ClassAcc, ClassScores, Scores, per_class, precision_at_k};
use super::table;
use crate::engine::Query;
use crate::error::{Error, Result};
use crate::index::Segment;
use crate::kernel::Scored;

/// One outside query: a photo and the article types that count as a match.
#[derive(Debug, Clone)]
pub struct PhotoQuery {
    pub file: PathBuf,
    pub label: String,
    pub matches: Vec<String>,
    /// The base colours that count as the photo's (lower-cased; empty: not known).
    pub colours: Vec<String>,
    /// The catalogue item the photo shows, left out of its results (as leave-one-out
    /// leaves a query item out): a photo made from a catalogue item must not find itself.
    pub item: Option<String>,
}

/// The catalogue column a query's `match_base_colours` are compared with.
pub const COLOUR_COLUMN: &str = "baseColour";

/// Read a queries CSV (`file,label,...,match_article_types[,match_base_colours][,item]`).
pub fn read_queries(csv_path: &Path, images: &Path) -> Result<Vec<PhotoQuery>> {
    let bad = |message: String| Error::BadParameter { name: "queries", message };
    let (mut rdr, headers) = table::open(csv_path, "queries")?;
    let [fc, mc] =
        table::required(&headers, ["file", "match_article_types"], csv_path, "queries", "")?;
    let col = |name: &str| table::column(&headers, name);
    let lc = col("label");
    let cc = col("match_base_colours");
    let ic = col("item");
    let list = table::match_list;
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let (Some(f), Some(m)) = (rec.get(fc), rec.get(mc)) else { continue };
        out.push(PhotoQuery {
            file: images.join(f.trim()),
            label: lc.and_then(|i| rec.get(i)).unwrap_or("").trim().to_string(),
            matches: list(m),
            colours: cc.and_then(|i| rec.get(i)).map(list).unwrap_or_default(),
            item: ic
                .and_then(|i| rec.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        });
    }
    Ok(out)
}

/// The class of queries whose CSV row has no label.
pub const UNLABELLED: &str = "(no label)";

/// Results of outside-photo queries.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoReport {
    pub k: usize,
    pub queries: usize,
    pub precision: f64,
    /// Share of queries with no correct item in their top k.
    pub none_correct: f64,
    /// Precision@k counting a result right only when its base colour is one of the
    /// query's too, over the queries whose CSV row names colours (`None`: no row does; an
    /// index without base colours refuses such rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour_precision: Option<f64>,
    /// How many queries `colour_precision` is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour_queries: Option<usize>,
    pub by_label: BTreeMap<String, Scores>,
    /// Every query label's precision and share with nothing right, weakest first.
    pub per_class: Vec<ClassScores>,
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
    let mut classes: BTreeMap<String, ClassAcc> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut sample_out = Vec::new();
    let mut coloured = Acc::default();
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
        if !q.colours.is_empty() {
            let right: Vec<bool> = top
                .iter()
                .zip(&rel)
                .map(|(s, &r)| {
                    r && index
                        .metadata(s.row)
                        .get(COLOUR_COLUMN)
                        .is_some_and(|v| q.colours.contains(&v.to_lowercase()))
                })
                .collect();
            coloured.add(precision_at_k(&right, k), 0.0);
        }
        let any = rel.iter().any(|r| *r);
        if !any {
            none += 1;
        }
        overall.add(p, 0.0);
        by_label.entry(q.label.clone()).or_default().add(p, 0.0);
        let class = if q.label.is_empty() { UNLABELLED } else { q.label.as_str() };
        classes.entry(class.to_string()).or_default().add(p, any);
        if samples > 0 && i % step == 0 && sample_out.len() < samples {
            sample_out.push((q.file.clone(), top));
        }
    }
    let s = overall.scores();
    let c = coloured.scores();
    let has_colours = c.queries > 0;
    PhotoReport {
        colour_precision: has_colours.then_some(c.precision),
        colour_queries: has_colours.then_some(c.queries),
        k,
        queries: s.queries,
        precision: s.precision,
        none_correct: none as f64 / s.queries.max(1) as f64,
        by_label: by_label.iter().map(|(l, a)| (l.clone(), a.scores())).collect(),
        per_class: per_class(&classes),
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
    query: &Query,
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
    let known = |c: &str| engine.info().columns.iter().any(|k| k == c);
    if queries.iter().any(|q| !q.colours.is_empty()) && !known(COLOUR_COLUMN) {
        return Err(Error::UnknownColumn {
            column: COLOUR_COLUMN.to_string(),
            known: engine.info().columns.join(", "),
        });
    }
    let files: Vec<PathBuf> = queries.iter().map(|q| q.file.clone()).collect();
    let vectors = engine.embed_files(&files, query);
    let results: Vec<_> = queries
        .into_iter()
        .zip(vectors)
        .map(|(q, v)| {
            let top = v.and_then(|v| {
                // One more result, for the photo's own item to be left out of.
                let own = Query { k: k + usize::from(q.item.is_some()), ..query.clone() };
                let hits = engine.search_embedded(&v, &own).map_err(|e| e.to_string())?.hits;
                Ok(hits
                    .into_iter()
                    .filter(|h| q.item.as_ref() != Some(&h.id))
                    .take(k)
                    .filter_map(|h| index.row_of(&h.id).map(|row| Scored { row, score: h.score }))
                    .collect())
            });
            (q, top)
        })
        .collect();
    Ok(score_photo_queries(&index, column, k, results, samples))
}
