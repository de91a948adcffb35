//! Retrieval-quality evaluation: precision@k and mAP@k of an index, by leave-one-out over
//! the catalogue itself or with outside photos (shopper snapshots) as queries.
//!
//! Definitions (the same as the Python reference in `bench/reference.py`):
//! - precision@k: share of the top k results that are relevant (k fixed, even when fewer
//!   relevant items exist).
//! - AP@k: `(1 / min(k, R)) * sum_{i<=k} precision@i * rel(i)`, R the number of relevant
//!   items in the catalogue (the query excluded); queries with R = 0 count as 0.
//! - mAP@k: mean AP@k over queries.
//!
//! [`run`] is what `lookalike eval` does: a [`Spec`] in, an [`Evaluation`] out.

mod catalogue;
mod looks;
mod metrics;
mod photos;
mod table;
#[cfg(test)]
mod tests;
mod tiles;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub use catalogue::{
    CategoryRows, LabelReport, LeaveOneOut, LooReport, ProjectedRows, QueryOf, Ranker, Reorder,
    holdout, leave_one_out,
};
pub use looks::{
    KindScores, LookPhoto, LooksReport, MATCH_IOU, TrueGarment, read_looks, score_looks,
};
pub use metrics::{ClassScores, Scores, average_precision_at_k, precision_at_k};
pub use photos::{
    COLOUR_COLUMN, PhotoQuery, PhotoReport, UNLABELLED, photo_queries, read_queries,
    score_photo_queries,
};
pub use tiles::{loo_rows, photo_rows};

pub use crate::label::parse_labels;
pub use crate::split::{HOLDOUT_PERCENT, in_holdout};

use crate::engine::{Engine, Query};
use crate::error::{Error, Result};
use crate::index::SearchMode;
use crate::kernel::Scored;
use crate::preprocess::QueryResize;

/// What to measure, as `lookalike eval`'s flags say it.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Leave-one-out over the catalogue (also done when no `queries` are given).
    pub leave_one_out: bool,
    /// Relevance labels (`a`, `a+b`); empty: [`crate::label::default_specs`].
    pub labels: Vec<String>,
    /// Column whose values break the figures down (default: masterCategory if present).
    pub group_by: Option<String>,
    /// A CSV of outside photos, and the folder of its photos (default: the CSV's
    /// folder/images).
    pub queries: Option<PathBuf>,
    pub images: Option<PathBuf>,
    /// Column that the queries' match lists name.
    pub match_column: String,
    /// k, filter and ranking, as `search` takes them.
    pub query: Query,
    /// How outside photos are squared.
    pub query_resize: QueryResize,
    /// Within the held-out split (catalogue) and the test part (outside photos) only.
    pub holdout: bool,
    /// Sample queries kept for the HTML report.
    pub samples: usize,
    /// A looks CSV ([`read_looks`]): every garment of each photo found and searched.
    pub looks: Option<PathBuf>,
}

/// A leave-one-out run and the settings it ranked with.
#[derive(Debug)]
pub struct CatalogueRun {
    pub report: LooReport,
    pub seconds: f64,
    /// The trained projection's share, when it re-ordered.
    pub trained: Option<f32>,
    /// The predicted category's share, when it re-ordered.
    pub category: Option<f32>,
}

/// An outside-photo run and the settings it ranked with.
#[derive(Debug)]
pub struct PhotoRun {
    pub report: PhotoReport,
    pub trained: Option<f32>,
    pub category: Option<f32>,
}

/// What [`run`] measured.
#[derive(Debug)]
pub struct Evaluation {
    pub catalogue: Option<CatalogueRun>,
    pub photos: Option<PhotoRun>,
    pub looks: Option<LooksReport>,
    /// Rows of the HTML report (samples beside their top k).
    pub rows: Vec<crate::report::Row>,
}

/// Measure `engine`'s index as `spec` says: leave-one-out, outside photos, or both.
pub fn run(engine: &Engine, spec: &Spec) -> Result<Evaluation> {
    let query = &spec.query;
    // Catalogue items query as catalogue items do: with the index's default.
    let (catalogue_colour, catalogue_trained) = engine.settings(query, false)?;
    if spec.holdout && catalogue_trained.is_some_and(|(p, _)| !p.meta().holdout_excluded) {
        return Err(Error::BadParameter {
            name: "holdout",
            message: "the projection was trained on the held-out split too \
                      (train --include-holdout); retrain it without, or measure with \
                      --mix 0"
                .into(),
        });
    }
    let full = engine.index().compacted();
    let segment = if spec.holdout { Arc::new(holdout(&full)) } else { full.clone() };
    let columns = &engine.info().columns;
    let root = engine.info().catalog.clone();
    let mut out = Evaluation { catalogue: None, photos: None, looks: None, rows: Vec::new() };
    if let Some(csv) = &spec.looks {
        let photos = read_looks(csv)?;
        let query = Query { resize: spec.query_resize, ..query.clone() };
        out.looks = Some(score_looks(engine, &photos, &query, &spec.match_column)?);
    }
    if spec.leave_one_out || (spec.queries.is_none() && spec.looks.is_none()) {
        let specs = if spec.labels.is_empty() {
            crate::label::default_specs(columns)
        } else {
            spec.labels.clone()
        };
        if specs.is_empty() {
            return Err(Error::BadParameter {
                name: "label",
                message: format!("give --label COLUMN (columns: {})", columns.join(", ")),
            });
        }
        let parsed = parse_labels(&specs, columns)?;
        let group = spec
            .group_by
            .clone()
            .or_else(|| columns.iter().find(|c| *c == "masterCategory").cloned());
        let t = Instant::now();
        // `--ann`: every item's ranking through the partition, as `search --similar-to`.
        let ranker = |row: usize| -> Result<Vec<Scored>> {
            let hits = engine.similar_to(segment.id(row), query)?;
            Ok(hits
                .iter()
                .filter_map(|h| Some(Scored { row: segment.row_of(&h.id)?, score: h.score }))
                .collect())
        };
        // The exact path scores stored vectors in blocks: with --colour, each query is
        // reweighted first; without, the stored vectors are the queries.
        let query_of = |v: &[f32]| engine.query_vector(v, catalogue_colour);
        let query_of = catalogue_colour.is_some().then_some(&query_of as &QueryOf<'_>);
        let through_search = query.mode == SearchMode::Ann || query.expand.is_some_and(|n| n > 0);
        let projected = match catalogue_trained {
            Some((p, mix)) if !through_search => Some(ProjectedRows::new(&segment, p, mix)?),
            _ => None,
        };
        let shares = engine.category_shares(query)?;
        let category =
            shares.filter(|_| !through_search).map(|s| CategoryRows::new(engine, &segment, s));
        let run = LeaveOneOut {
            k: query.k,
            labels: &parsed,
            group_by: group.as_deref(),
            filter: &query.filter,
            samples: spec.samples,
            // Through the search path when it differs from a plain exact scan.
            ranker: through_search.then_some(&ranker as &Ranker<'_>),
            query_of,
            reorder: Reorder { trained: projected.as_ref(), category: category.as_ref() },
        };
        let report = leave_one_out(&segment, &run)?;
        let seconds = t.elapsed().as_secs_f64();
        out.rows.extend(loo_rows(&segment, root.as_deref(), &report, &parsed));
        out.catalogue = Some(CatalogueRun {
            report,
            seconds,
            trained: catalogue_trained.map(|(_, mix)| mix),
            category: shares.map(|s| s.article_type),
        });
    }
    if let Some(csv) = &spec.queries {
        let dir = match &spec.images {
            Some(d) => d.clone(),
            None => csv.parent().unwrap_or(Path::new(".")).join("images"),
        };
        let mut qs = read_queries(csv, &dir)?;
        if spec.holdout {
            // The outside photos' test part: never trained on (crate::split).
            qs.retain(|q| {
                q.file
                    .file_name()
                    .is_some_and(|f| crate::split::query_in_test(&f.to_string_lossy()))
            });
        }
        let query = Query { resize: spec.query_resize, ..query.clone() };
        let report = photo_queries(engine, qs.clone(), &spec.match_column, &query, spec.samples)?;
        // Photo queries rank the whole index (not the held-out segment): their rows are
        // the whole index's.
        out.rows.extend(photo_rows(&full, root.as_deref(), &report, &qs, &spec.match_column));
        out.photos = Some(PhotoRun {
            report,
            trained: query.trained,
            category: engine.category_shares(&query)?.map(|s| s.article_type),
        });
    }
    Ok(out)
}
