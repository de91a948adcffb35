//! An opened index ready to answer queries: store, model and in-memory vectors together.
//!
//! This is what the CLI's `search`, the server and the evaluator hold. Queries are
//! photos (bytes), ids of indexed items, or raw vectors. Items can be added and removed
//! while it answers: each write places the new items in the partition's cells, commits
//! to the store, then publishes the next in-memory snapshot; searches read whichever
//! snapshot is current and never wait for a writer.
//!
//! `mod.rs` holds the engine and its settings; `photo.rs` turns query photos into vectors
//! (squaring, snapshot size, the garment); `search.rs` the read path (candidates,
//! predictions, collapsing); `ranking.rs` the re-ranking pipeline that searches and
//! evaluation share; `write.rs` the write path.

mod items;
mod looks;
mod photo;
pub mod ranking;
mod recommend;
mod search;
mod write;

pub use items::{CENSUS_MAX_VALUES, CENSUS_TTL, Census, Residency};
pub use looks::{FINDER_SIZE, GarmentAnswer, Look};
pub use photo::{Embedded, QueryInput};
pub use recommend::{Example, MAX_EXAMPLES};
pub use write::{ADDED_PHOTOS_DIR, MAX_ID_LEN, NewItem, WriteReport, canonical_id};

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::category::{self, Heads, Prediction, Shares};
use crate::embed::{BackendKind, Embedder, Parallelism};
use crate::error::{Error, Result};
use crate::index::{Filter, Hit, SearchMode, VectorIndex};
use crate::location::{Location, OpenIndex};
use crate::model::ResolvedModel;
use crate::preprocess::{Crop, QueryResize};
use crate::projection::{
    DEFAULT_MIX, ProjectedCache, Projection, ProjectionError, SNAPSHOTS_TRAINED, TRAINED_COLOUR,
    Trained,
};
use crate::store::{IndexInfo, Store};

/// Largest k a query may ask for.
pub const MAX_K: usize = 1000;

/// Most results a query expansion folds into the query.
pub const MAX_EXPAND: usize = 20;

/// Snapshots are embedded with their left-right mirror too, unless a query says
/// ([`Query::flip`]; BENCHMARKS.md, "Resolution and views").
pub const FLIP_SNAPSHOTS: bool = false;

/// A large garment's view is averaged with the whole photo's embedding from the garment
/// mask's run (the photo padded to a square), not with a second run on the photo
/// cropped to one, unless a query says ([`Query::one_pass`]; BENCHMARKS.md, "One pass").
pub const ONE_PASS: bool = false;

/// Searching every garment of a photo, each garment's results are kept among items of its
/// kind, unless a query says ([`Query::kind_filter`]; BENCHMARKS.md, "Every garment in a
/// photo").
pub const KIND_FILTER: bool = true;

/// How much colour counts for a snapshot whose garment colour the mask gave
/// ([`Embedded::garment_colour`]) and whose query does not say; a snapshot without it is
/// searched by shape alone (BENCHMARKS.md, "Colour of snapshots").
pub const SNAPSHOT_COLOUR: f32 = 0.0;

/// A query's options.
#[derive(Debug, Clone)]
pub struct Query {
    pub k: usize,
    pub filter: Filter,
    pub crop: Option<Crop>,
    /// How a query photo is squared (the catalogue is always padded).
    pub resize: QueryResize,
    /// Exact comparison, the partition's nearest cells, or chosen by the number of
    /// candidates.
    pub mode: SearchMode,
    /// How much colour counts against shape (`None`: the index's own weight; 0: not at
    /// all). Needs an index built with the colour descriptor.
    pub colour: Option<f32>,
    /// Results scoring below this are not returned (fewer than k may come back).
    pub min_score: Option<f32>,
    /// A result whose vector has at least this cosine with a better result is left out
    /// (near-duplicates: the same product photographed again); the next ones move up.
    pub collapse: Option<f32>,
    /// Query expansion: search once, fold the vectors of the best this many results into
    /// the query, then search with that (`None` or 0: plain search).
    pub expand: Option<usize>,
    /// Trained search: re-order the best candidates with the index's trained projection
    /// (`lookalike train`); the value is the projected cosine's share of the score
    /// (0..=1, see [`crate::projection`]; 0: the stored vectors alone). `None`: the index's
    /// default, which is the projection at [`DEFAULT_MIX`] when the index has one, for
    /// every query but snapshots (shopper photos fare worse with it; BENCHMARKS.md).
    pub trained: Option<f32>,
    /// Category-aware ranking: the share of the score given to the predicted article type
    /// (the colour's scaled alike; see [`crate::category`]); 0: by similarity alone.
    /// `None`: [`category::DEFAULT_TYPE_SHARE`] when the model predicts categories, off
    /// otherwise (a value asks for it anyway, predicted by the nearest items' labels).
    pub category: Option<f32>,
    /// Search a snapshot by its garment: crop the photo to the garment the model finds
    /// (`None`: for snapshots without a crop, when the model has a garment mask).
    pub locate: Option<bool>,
    /// Embed the photo with its left-right mirror as a second view, averaged (`None`: for
    /// snapshots when [`FLIP_SNAPSHOTS`]).
    pub flip: Option<bool>,
    /// The whole photo's view from the garment mask's run (`None`: [`ONE_PASS`]).
    pub one_pass: Option<bool>,
    /// Searching every garment of a photo: each garment's results among items of its
    /// kind only (`None`: [`KIND_FILTER`]; see [`crate::garment::Kind::sub_categories`]).
    pub kind_filter: Option<bool>,
    /// With category ranking, a snapshot's last place goes to the most similar item the
    /// places before do not show ([`category::keep_nearest`]); `false`: every place by
    /// blended score. A catalogue item's search (similar-to, leave-one-out, recommend)
    /// and a garment cut from a look ([`Engine::search_look`]) never get it.
    pub keep_nearest: bool,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            k: 5,
            filter: Filter::default(),
            crop: None,
            resize: QueryResize::Auto,
            mode: SearchMode::Auto,
            colour: None,
            min_score: None,
            collapse: None,
            expand: None,
            trained: None,
            category: None,
            locate: None,
            flip: None,
            one_pass: None,
            kind_filter: None,
            keep_nearest: true,
        }
    }
}

/// What a search gives back besides its results.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub hits: Vec<Hit>,
    /// What the query looks like, per column the index can predict (best first).
    pub predicted: Vec<Prediction>,
    /// The garment's square in the query photo, when the photo was searched by it.
    pub garment: Option<Crop>,
    /// A photo query whose best result scores below the model's calibrated floor
    /// ([`crate::model::close_match_floor`]): "no close match; here are the nearest".
    /// Always false for item queries and for models without a calibrated floor.
    pub no_close_match: bool,
    pub timing: Timing,
}

/// Time spent answering a photo query, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timing {
    pub decode_ms: f64,
    pub embed_ms: f64,
    pub search_ms: f64,
    /// The part of `search_ms` spent re-ordering candidates (trained projection, category).
    pub rerank_ms: f64,
}

/// An index opened for searching.
pub struct Engine {
    /// Where the index lives (a folder, or a `milvus://` address).
    location: Location,
    info: IndexInfo,
    store: Arc<dyn Store>,
    /// The index's model: what embeds the catalogue (indexing, live adds).
    embedder: Embedder,
    /// Its int8 twin, when query photos are embedded by it ([`Engine::open_queried`]).
    query_embedder: Option<Embedder>,
    /// Every item, unless the store answers reads itself and the index was opened for
    /// queries ([`Residency`]): then empty, and `in_store` is set.
    index: ArcSwap<VectorIndex>,
    in_store: bool,
    /// The store's census of metadata values, when there is no snapshot to count.
    census: items::CensusCache,
    /// The trained projection, if the index has one; a damaged or mismatched one is kept
    /// as its error, raised only by queries that ask for it.
    projection: std::result::Result<Option<Arc<Projection>>, String>,
    /// Its projected vectors of the items searches have re-ordered.
    projected: ProjectedCache,
    /// The model's class heads, if it has them (unreadable ones as their error, raised
    /// only by queries that ask for category ranking).
    heads: std::result::Result<Option<Arc<Heads>>, String>,
    /// One writer at a time; readers never take it.
    writer: Mutex<()>,
    /// Whether the first write has swept `photos/` of orphaned files.
    swept: std::sync::atomic::AtomicBool,
    /// How the model runs (the garment finder runs alike).
    backend: BackendKind,
    parallelism: Parallelism,
    /// The garment finder, loaded by the first search for every garment of a photo (a
    /// load that failed as its message, given to every such search).
    finder: std::sync::OnceLock<std::result::Result<Embedder, String>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("location", &self.location)
            .field("items_in_memory", &self.index.load().len())
            .field("in_store", &self.in_store)
            .finish()
    }
}

/// Open an index's description without loading a model (for `info`).
pub fn read_info(location: &Location) -> Result<(IndexInfo, usize)> {
    let (store, info) = location.open_index()?;
    Ok((info, store.len()?))
}

/// What `lookalike info` shows of an index, read without loading its vectors.
#[derive(Debug)]
pub struct Description {
    pub info: IndexInfo,
    /// Items stored.
    pub count: usize,
    /// Items a server holds in memory: all, or none where the store answers reads
    /// itself ([`Residency::InStoreWherePossible`]).
    pub items_in_memory: usize,
    /// Partition cells (0: none) and items no cell holds yet.
    pub cells: usize,
    pub unplaced: usize,
    /// Columns the model predicts, or why its heads file is unusable.
    pub predicts: std::result::Result<Vec<String>, String>,
    /// The trained projection, if any, or why it is unusable.
    pub projection: std::result::Result<Option<Projection>, ProjectionError>,
}

/// Describe the index at `location`.
pub fn describe(location: &Location) -> Result<Description> {
    let (store, info) = location.open_index()?;
    let records = store.records()?;
    let (cells, unplaced) = partition_of(store.as_ref(), &info, &records)?;
    let predicts = location
        .model(&info, None)
        .map_err(|e| crate::error::chain(&e))
        .and_then(|m| read_predicts(&m, &info));
    let projection = Projection::read(store.as_ref());
    let items_in_memory = if store.reads().is_some() { 0 } else { records.len() };
    Ok(Description {
        info,
        count: records.len(),
        items_in_memory,
        cells,
        unplaced,
        predicts,
        projection,
    })
}

/// The columns a model predicts (its class heads that name one of the index's columns);
/// empty for a model without heads.
pub fn read_predicts(
    model: &ResolvedModel,
    info: &IndexInfo,
) -> std::result::Result<Vec<String>, String> {
    let Some(path) = model.heads_path() else { return Ok(Vec::new()) };
    let heads = Heads::load(&path).map_err(|e| crate::error::chain(&e))?;
    Ok(heads
        .heads()
        .iter()
        .map(|h| h.column().to_string())
        .filter(|c| info.columns.contains(c))
        .collect())
}

/// The partition of an index: cells (0: none) and items no cell holds yet.
fn partition_of(
    store: &dyn Store,
    info: &IndexInfo,
    records: &[(String, crate::store::ItemRecord)],
) -> Result<(usize, usize)> {
    let Some(cells) =
        store.centroids()?.and_then(|c| crate::index::Partition::from_centroids(info.dim, c))
    else {
        return Ok((0, records.len()));
    };
    let n = cells.cells();
    let unplaced = records.iter().filter(|(_, r)| r.cell.is_none_or(|c| c as usize >= n)).count();
    Ok((n, unplaced))
}

impl Engine {
    /// Open the index at `location` (a folder with its own model copy, or a collection
    /// whose model is the built-in one it names).
    pub fn open(location: &Location, backend: BackendKind) -> Result<Self> {
        Self::open_with_model(location, backend, None)
    }

    /// Open the index at `location`; for a collection, `model` (a built-in name or a
    /// manifest) in place of the one it names, refused unless it is the same file.
    pub fn open_with_model(
        location: &Location,
        backend: BackendKind,
        model: Option<&str>,
    ) -> Result<Self> {
        Self::open_with(location, backend, model, Parallelism::default())
    }

    /// [`Engine::open_with_model`], the model run `par` at once (a server: one per
    /// search worker).
    pub fn open_with(
        location: &Location,
        backend: BackendKind,
        model: Option<&str>,
        par: Parallelism,
    ) -> Result<Self> {
        Self::open_queried(location, backend, model, par, crate::model::QueryPrecision::Auto)
    }

    /// [`Engine::open_with`], query photos embedded as `queries` says: the catalogue
    /// stays embedded by the index's own model; only an index of a built-in model with an
    /// int8 twin ([`crate::model::query_twin`], the same file the index recorded) has a
    /// choice. `int8` where there is no twin, or on tract, is refused; at `auto`, a twin
    /// that cannot load (its file missing) leaves queries to the index's model.
    pub fn open_queried(
        location: &Location,
        backend: BackendKind,
        model: Option<&str>,
        par: Parallelism,
        queries: crate::model::QueryPrecision,
    ) -> Result<Self> {
        Self::open_held(location, backend, model, par, queries, Residency::Snapshot)
    }

    /// [`Engine::open_queried`], its items held as `residency` says: a query server on a
    /// Milvus collection holds none ([`Residency::InStoreWherePossible`]).
    pub fn open_held(
        location: &Location,
        backend: BackendKind,
        model: Option<&str>,
        par: Parallelism,
        queries: crate::model::QueryPrecision,
        residency: Residency,
    ) -> Result<Self> {
        let OpenIndex { store, info, model } = location.open(model)?;
        let embedder =
            Embedder::with_parallelism(&model, backend, par)?.with_colour(info.colour_weight);
        let in_store = residency == Residency::InStoreWherePossible && store.reads().is_some();
        let index = ArcSwap::from_pointee(if in_store {
            VectorIndex::default()
        } else {
            VectorIndex::load(store.as_ref(), info.dim)?.searched_by(store.clone())
        });
        let projection = Projection::read(store.as_ref())
            .and_then(|p| match p {
                Some(p) => {
                    p.check_model(info.model.dim, &info.model_hash).map(|()| Some(Arc::new(p)))
                }
                None => Ok(None),
            })
            .map_err(|e| {
                let e = crate::error::chain(&e);
                tracing::warn!("trained search unavailable: {e}");
                e
            });
        let heads = match model.heads_path() {
            None => Ok(None),
            Some(path) => Heads::load(&path)
                .and_then(|h| {
                    if h.dim() == info.model.dim {
                        Ok(Some(Arc::new(h)))
                    } else {
                        Err(category::CategoryError::Invalid {
                            path: path.clone(),
                            message: format!(
                                "the heads classify {}-d embeddings, the model gives {}",
                                h.dim(),
                                info.model.dim
                            ),
                        })
                    }
                })
                .map_err(|e| {
                    let e = crate::error::chain(&e);
                    tracing::warn!("category predictions unavailable: {e}");
                    e
                }),
        };
        let engine = Self {
            location: location.clone(),
            info,
            store,
            embedder,
            query_embedder: None,
            index,
            in_store,
            census: items::CensusCache::default(),
            projection,
            projected: ProjectedCache::default(),
            heads,
            writer: Mutex::new(()),
            swept: std::sync::atomic::AtomicBool::new(false),
            backend,
            parallelism: par,
            finder: std::sync::OnceLock::new(),
        };
        let twin = match engine.query_twin(queries) {
            Err(e) if queries == crate::model::QueryPrecision::Auto => {
                tracing::warn!("query photos embedded in fp32: {}", crate::error::chain(&e));
                None
            }
            twin => twin?,
        };
        if queries == crate::model::QueryPrecision::Int8 && twin.is_none() {
            return Err(Error::BadParameter {
                name: "query-precision",
                message: format!(
                    "the index's model ({}) has no int8 twin that this backend runs; only {} has",
                    engine.info.model.name,
                    crate::model::FASHION
                ),
            });
        }
        // Without a snapshot the census is taken by `warm`, or by the first search.
        Ok(Self { query_embedder: twin, ..engine })
    }

    /// The index's trained projection (`None`: not trained; an error: unreadable).
    pub fn projection(&self) -> Result<Option<&Projection>> {
        match &self.projection {
            Ok(p) => Ok(p.as_deref()),
            Err(e) => Err(Error::BadParameter { name: "trained", message: e.clone() }),
        }
    }

    /// The projection a query is re-ordered with, and its share of the score: what the
    /// query asks for, else the index's default (its projection, if it has one, for
    /// catalogue items and studio shots; see [`Query::trained`]).
    pub fn trained_for(&self, q: &Query, snapshot: bool) -> Result<Option<Trained<'_>>> {
        match q.trained {
            Some(mix) => {
                crate::projection::check_mix(mix)?;
                if mix == 0.0 {
                    return Ok(None);
                }
                let p = self.projection()?.ok_or_else(|| {
                    Error::Projection(ProjectionError::Missing { index: self.location.to_string() })
                })?;
                Ok(Some((p, mix)))
            }
            None if snapshot && !SNAPSHOTS_TRAINED => Ok(None),
            // A damaged projection was reported when the index was opened; searches that
            // did not ask for it go on without it.
            None => Ok(self.projection().ok().flatten().map(|p| (p, DEFAULT_MIX))),
        }
    }

    /// The model's class heads (`None`: the model has none; an error: unreadable).
    pub fn heads(&self) -> Result<Option<&Heads>> {
        match &self.heads {
            Ok(h) => Ok(h.as_deref()),
            Err(e) => Err(Error::BadParameter { name: "category", message: e.clone() }),
        }
    }

    /// How much the predicted category counts for a query: what it asks for, else the
    /// default when the model predicts categories (`None`: by similarity alone).
    pub fn category_shares(&self, q: &Query) -> Result<Option<Shares>> {
        match q.category {
            Some(share) => {
                category::check_share(share)?;
                if share > 0.0 {
                    // Asked for: a damaged heads file is the query's error.
                    self.heads()?;
                }
                Ok(Some(Shares::scaled(share)).filter(|s| !s.is_off()))
            }
            None => Ok(self
                .heads()
                .ok()
                .flatten()
                .map(|_| Shares::scaled(category::DEFAULT_TYPE_SHARE))),
        }
    }

    pub fn info(&self) -> &IndexInfo {
        &self.info
    }

    /// The current snapshot of the index: stays valid (and unchanged) while held.
    pub fn index(&self) -> Arc<VectorIndex> {
        self.index.load_full()
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Whether the index's store answers now (a folder always does; a Milvus server may
    /// be down): one cheap read of its version.
    pub fn ready(&self) -> Result<()> {
        self.store.version()?;
        Ok(())
    }

    /// Where the index lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// What embeds query photos: the int8 twin when chosen, else the index's model.
    pub fn query_embedder(&self) -> &Embedder {
        self.query_embedder.as_ref().unwrap_or(&self.embedder)
    }

    /// The twin `p` asks for, loaded; `None` when queries keep the index's model.
    fn query_twin(&self, p: crate::model::QueryPrecision) -> Result<Option<Embedder>> {
        use crate::model::{self, QueryPrecision};
        let Some(twin) = model::query_twin(&self.info.model.name) else {
            return Ok(None);
        };
        let wanted = match p {
            QueryPrecision::Fp32 => false,
            QueryPrecision::Int8 => true,
            QueryPrecision::Auto => twin.auto && model::int8_is_fast(),
        };
        if !wanted {
            return Ok(None);
        }
        if self.embedder.backend_name() != "onnxruntime" {
            return Ok(None);
        }
        // The twin stands for the built-in file only: an index whose model merely has
        // its name (another file) keeps its own.
        let own = model::resolve(&self.info.model.name)?;
        if crate::location::file_hash(&own.path)? != self.info.model_hash {
            return Ok(None);
        }
        let twin = model::resolve(twin.name)?;
        let e = Embedder::with_parallelism(&twin, self.backend, self.parallelism)?
            .with_colour(self.info.colour_weight);
        Ok(Some(e))
    }

    /// Parse `column=value` filters against this index's columns.
    pub fn filter<S: AsRef<str>>(&self, specs: &[S]) -> Result<Filter> {
        Filter::parse(specs, &self.info.columns)
    }

    fn check_k(k: usize) -> Result<()> {
        if k == 0 || k > MAX_K {
            return Err(Error::BadParameter {
                name: "k",
                message: format!("{k} is not in 1..={MAX_K}"),
            });
        }
        Ok(())
    }

    /// The colour weight and the projection a query is answered with: what it asks for,
    /// else the defaults. A trained search weighs colour [`TRAINED_COLOUR`] unless told:
    /// the projection brings back the article type that more colour costs (held-out
    /// split: type 0.788, type+colour 0.355, against 0.713 and 0.286 untrained at 0.3).
    pub fn settings(
        &self,
        q: &Query,
        snapshot: bool,
    ) -> Result<(Option<f32>, Option<Trained<'_>>)> {
        let trained = self.trained_for(q, snapshot)?;
        let colour = match q.colour {
            None if trained.is_some() && self.info.colour_weight > 0.0 => Some(TRAINED_COLOUR),
            c => c,
        };
        Ok((colour, trained))
    }

    /// The vector that searches with colour weight `colour` for a stored-form vector `v`
    /// (see [`crate::colour::reweight`]).
    pub fn query_vector(&self, v: &[f32], colour: Option<f32>) -> Result<Vec<f32>> {
        let Some(w) = colour else { return Ok(v.to_vec()) };
        if !(0.0..=crate::ingest::MAX_COLOUR_WEIGHT).contains(&w) {
            return Err(Error::BadParameter {
                name: "colour",
                message: format!("{w} is not in 0..={}", crate::ingest::MAX_COLOUR_WEIGHT),
            });
        }
        if self.info.colour_weight <= 0.0 {
            if w == 0.0 {
                return Ok(v.to_vec());
            }
            return Err(Error::BadParameter {
                name: "colour",
                message: "this index was built without the colour descriptor (re-index it into \
                          a new folder to weigh colour)"
                    .into(),
            });
        }
        Ok(crate::colour::reweight(v, self.info.model.dim, self.info.colour_weight, w))
    }
}
