//! An opened index ready to answer queries: store, model and in-memory vectors together.
//!
//! This is what the CLI's `search`, the server and the evaluator hold. Queries are
//! photos (bytes), ids of indexed items, or raw vectors. Items can be added and removed
//! while it answers: each write places the new items in the partition's cells, commits
//! to the store, then publishes the next in-memory snapshot; searches read whichever
//! snapshot is current and never wait for a writer.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use rayon::prelude::*;

use crate::category::{self, Heads, Prediction, Ranking, Shares};
use crate::embed::{BackendKind, Embedder};
use crate::error::{Error, Result};
use crate::index::{Filter, Hit, Item, SearchMode, VectorIndex};
use crate::ingest::MODEL_FILE;
use crate::model::ResizeMode;
use crate::model::ResolvedModel;
use crate::preprocess::{self, Crop, QueryResize};
use crate::projection::{
    DEFAULT_MIX, ProjectedCache, Projection, ProjectionError, RERANK_DEPTH, SNAPSHOTS_TRAINED,
    TRAINED_COLOUR, Trained,
};
use crate::store::{Change, IndexInfo, ItemRecord, LmdbStore, Store, StoreError};

/// Folder inside the index that keeps the photos of items added by `add` or the API.
pub const ADDED_PHOTOS_DIR: &str = "photos";

/// Longest item id accepted from `add` or the API.
pub const MAX_ID_LEN: usize = 200;

/// Largest k a query may ask for.
pub const MAX_K: usize = 1000;

/// Most results a query expansion folds into the query.
pub const MAX_EXPAND: usize = 20;

/// With near-duplicate collapsing, a search looks this many times deeper than k.
const COLLAPSE_DEPTH: usize = 4;

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
        }
    }
}

/// An item to add: its id, its photo's bytes and its metadata (known columns only).
#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: String,
    pub photo: Vec<u8>,
    pub metadata: BTreeMap<String, String>,
}

/// What a write did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WriteReport {
    /// Ids new to the index.
    pub added: Vec<String>,
    /// Ids that were there and now hold the new photo and metadata.
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
    /// Items in the index after the write.
    pub total_items: usize,
    pub seconds: f64,
}

/// A query photo's vector (in stored form: the index's colour weight).
#[derive(Debug, Clone)]
pub struct Embedded {
    pub vector: Vec<f32>,
    /// Squared by cropping, as a snapshot rather than a studio shot.
    pub snapshot: bool,
    /// The garment's square in the photo, when it was found and the photo searched by it.
    pub garment: Option<Crop>,
}

/// A query photo made ready for the model.
#[derive(Debug, Clone)]
pub struct QueryInput {
    /// `views` tensors end to end: the photo as it is searched, and for a located garment
    /// the whole photo too (their embeddings are averaged, see [`Embedder::embed_views`]).
    pub tensor: Vec<f32>,
    pub views: usize,
    /// Its side in pixels (snapshots may run larger than catalogue photos).
    pub size: u32,
    pub snapshot: bool,
    pub garment: Option<Crop>,
}

/// What a search gives back besides its results.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub hits: Vec<Hit>,
    /// What the query looks like, per column the index can predict (best first).
    pub predicted: Vec<Prediction>,
    /// The garment's square in the query photo, when the photo was searched by it.
    pub garment: Option<Crop>,
    pub timing: Timing,
}

/// Time spent answering a photo query, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timing {
    pub decode_ms: f64,
    pub embed_ms: f64,
    pub search_ms: f64,
}

/// An index opened for searching.
pub struct Engine {
    dir: PathBuf,
    info: IndexInfo,
    store: LmdbStore,
    embedder: Embedder,
    index: ArcSwap<VectorIndex>,
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
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.dir)
            .field("items", &self.index.load().len())
            .finish()
    }
}

/// Open an index folder's description without loading a model (for `info`).
pub fn read_info(dir: &Path) -> Result<(IndexInfo, usize)> {
    let store = LmdbStore::open_existing(dir)?;
    let info = store.info()?.ok_or_else(|| StoreError::NotAnIndex(dir.display().to_string()))?;
    Ok((info, store.len()?))
}

/// The columns an index folder's model predicts (its class heads that name one of the
/// index's columns); empty for a model without heads.
pub fn read_predicts(dir: &Path, info: &IndexInfo) -> std::result::Result<Vec<String>, String> {
    let Some(file) = &info.model.heads else { return Ok(Vec::new()) };
    let heads = Heads::load(&dir.join(file)).map_err(|e| e.to_string())?;
    Ok(heads
        .heads()
        .iter()
        .map(|h| h.column().to_string())
        .filter(|c| info.columns.contains(c))
        .collect())
}

/// The partition of an index folder: cells (0: none) and items no cell holds yet.
pub fn read_partition(dir: &Path) -> Result<(usize, usize)> {
    let store = LmdbStore::open_existing(dir)?;
    let info = store.info()?.ok_or_else(|| StoreError::NotAnIndex(dir.display().to_string()))?;
    let Some(cells) =
        store.centroids()?.and_then(|c| crate::index::Partition::from_centroids(info.dim, c))
    else {
        return Ok((0, store.len()?));
    };
    let n = cells.cells();
    let unplaced =
        store.records()?.iter().filter(|(_, r)| r.cell.is_none_or(|c| c as usize >= n)).count();
    Ok((n, unplaced))
}

impl Engine {
    /// Open the index in `dir` with its own model copy.
    pub fn open(dir: &Path, backend: BackendKind) -> Result<Self> {
        let store = LmdbStore::open_existing(dir)?;
        let info =
            store.info()?.ok_or_else(|| StoreError::NotAnIndex(dir.display().to_string()))?;
        let model = ResolvedModel { spec: info.model.clone(), path: dir.join(MODEL_FILE) };
        let embedder = Embedder::new(&model, backend)?.with_colour(info.colour_weight);
        let index = ArcSwap::from_pointee(VectorIndex::load(&store, info.dim)?);
        let projection = Projection::load(dir)
            .and_then(|p| match p {
                Some(p) => {
                    p.check_model(info.model.dim, &info.model_hash).map(|()| Some(Arc::new(p)))
                }
                None => Ok(None),
            })
            .map_err(|e| {
                tracing::warn!("trained search unavailable: {e}");
                e.to_string()
            });
        let heads = match &info.model.heads {
            None => Ok(None),
            Some(file) => Heads::load(&dir.join(file))
                .and_then(|h| {
                    if h.dim() == info.model.dim {
                        Ok(Some(Arc::new(h)))
                    } else {
                        Err(category::CategoryError::Invalid {
                            path: dir.join(file),
                            message: format!(
                                "the heads classify {}-d embeddings, the model gives {}",
                                h.dim(),
                                info.model.dim
                            ),
                        })
                    }
                })
                .map_err(|e| {
                    tracing::warn!("category predictions unavailable: {e}");
                    e.to_string()
                }),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            info,
            store,
            embedder,
            index,
            projection,
            projected: ProjectedCache::default(),
            heads,
            writer: Mutex::new(()),
        })
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
                    Error::Projection(ProjectionError::Missing { dir: self.dir.clone() })
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

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn info(&self) -> &IndexInfo {
        &self.info
    }

    /// The current snapshot of the index: stays valid (and unchanged) while held.
    pub fn index(&self) -> Arc<VectorIndex> {
        self.index.load_full()
    }

    pub fn store(&self) -> &LmdbStore {
        &self.store
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
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

    /// Embed a photo given as file bytes (`locate`: see [`Query::locate`]).
    pub fn embed_photo(
        &self,
        bytes: &[u8],
        crop: Option<Crop>,
        resize: QueryResize,
        locate: Option<bool>,
    ) -> Result<(Embedded, Timing)> {
        let t0 = Instant::now();
        let img = preprocess::decode(bytes)?;
        let t1 = Instant::now();
        let input = self.query_tensor(&img, crop, resize, locate)?;
        let vector = self.embedder.embed_views(&input.tensor, input.views, input.size)?;
        let t2 = Instant::now();
        let timing = Timing {
            decode_ms: (t1 - t0).as_secs_f64() * 1e3,
            embed_ms: (t2 - t1).as_secs_f64() * 1e3,
            search_ms: 0.0,
        };
        Ok((Embedded { vector, snapshot: input.snapshot, garment: input.garment }, timing))
    }

    /// The model input for a decoded query photo: squared as a studio shot (padded) or a
    /// snapshot (cropped; at the model's snapshot size), and a snapshot cut to the
    /// garment the model finds in it, unless a crop is given or `locate` says no.
    pub fn query_tensor(
        &self,
        img: &image::RgbImage,
        crop: Option<Crop>,
        resize: QueryResize,
        locate: Option<bool>,
    ) -> Result<QueryInput> {
        let spec = self.embedder.spec();
        let cropped;
        let src = match crop {
            Some(c) => {
                cropped = preprocess::apply_crop(img, c)?;
                &cropped
            }
            None => img,
        };
        let mode = resize.resolve(src);
        let snapshot = mode == ResizeMode::Crop;
        let size = spec.input_size(snapshot);
        let wanted = crop.is_none() && spec.mask.is_some() && locate.unwrap_or(snapshot);
        let whole = preprocess::tensor_at(src, spec, None, mode, size)?;
        if wanted && let Some(garment) = self.garment_in(src, size)? {
            let cut = preprocess::apply_crop(src, garment)?;
            let mut tensor = preprocess::tensor_at(&cut, spec, None, ResizeMode::Crop, size)?;
            // A small garment is searched by its own view; a large one's view is averaged
            // with the whole photo's, which keeps what the mask missed (sleeves cut off
            // make a T-shirt a vest).
            let (w, h) = src.dimensions();
            let share = f64::from(garment.w) * f64::from(garment.h) / (f64::from(w) * f64::from(h));
            let views = if share < crate::garment::ALONE_BELOW {
                1
            } else {
                tensor.extend_from_slice(&whole);
                2
            };
            return Ok(QueryInput { tensor, views, size, snapshot, garment: Some(garment) });
        }
        Ok(QueryInput { tensor: whole, views: 1, size, snapshot, garment: None })
    }

    /// The garment's square in a photo: the model's mask over the whole photo (padded to
    /// a square, so that nothing is cut off), see [`crate::garment`].
    pub fn garment_in(&self, img: &image::RgbImage, size: u32) -> Result<Option<Crop>> {
        let spec = self.embedder.spec();
        let tensor = preprocess::tensor_at(img, spec, None, ResizeMode::Pad, size)?;
        let Some(mask) = self.embedder.garment_mask(&tensor, size)? else { return Ok(None) };
        let (w, h) = img.dimensions();
        Ok(crate::garment::locate(&mask.values, mask.rows, mask.cols, w, h))
    }

    /// Embed many photo files in batches; one result per file, failures as messages.
    pub fn embed_files(
        &self,
        files: &[std::path::PathBuf],
        resize: QueryResize,
        locate: Option<bool>,
    ) -> Vec<std::result::Result<Embedded, String>> {
        use rayon::prelude::*;
        let dim = self.info.dim;
        let mut out = Vec::with_capacity(files.len());
        for chunk in files.chunks(32) {
            let inputs: Vec<std::result::Result<QueryInput, String>> = chunk
                .par_iter()
                .map(|f| {
                    let bytes = std::fs::read(f).map_err(|e| format!("cannot read: {e}"))?;
                    let img = preprocess::decode(&bytes).map_err(|e| e.to_string())?;
                    self.query_tensor(&img, None, resize, locate).map_err(|e| e.to_string())
                })
                .collect();
            // One model run per input size in the chunk (studio shots and snapshots).
            let mut vectors: Vec<Option<std::result::Result<Vec<f32>, String>>> =
                vec![None; inputs.len()];
            for (i, input) in inputs.iter().enumerate() {
                if let Some(t) = input.as_ref().ok().filter(|t| t.views > 1) {
                    let v = self.embedder.embed_views(&t.tensor, t.views, t.size);
                    vectors[i] = Some(v.map_err(|e| e.to_string()));
                }
            }
            for size in self.embedder.spec().input_sizes() {
                let rows: Vec<usize> = (0..inputs.len())
                    .filter(|&i| inputs[i].as_ref().is_ok_and(|t| t.size == size && t.views == 1))
                    .collect();
                let batch: Vec<f32> = rows
                    .iter()
                    .filter_map(|&i| inputs[i].as_ref().ok())
                    .flat_map(|t| t.tensor.iter().copied())
                    .collect();
                match self.embedder.embed_tensors_at(&batch, rows.len(), size) {
                    Ok(v) => {
                        for (&i, v) in rows.iter().zip(v.chunks_exact(dim)) {
                            vectors[i] = Some(Ok(v.to_vec()));
                        }
                    }
                    Err(e) => rows.iter().for_each(|&i| vectors[i] = Some(Err(e.to_string()))),
                }
            }
            for (input, vector) in inputs.into_iter().zip(vectors) {
                out.push(input.and_then(|t| {
                    let vector = vector.ok_or("missing vector")??;
                    Ok(Embedded { vector, snapshot: t.snapshot, garment: t.garment })
                }));
            }
        }
        out
    }

    /// Search with a photo.
    pub fn search_photo(&self, bytes: &[u8], q: &Query) -> Result<Answer> {
        Self::check_k(q.k)?;
        let (e, timing) = self.embed_photo(bytes, q.crop, q.resize, q.locate)?;
        let t = Instant::now();
        let mut answer = self.search_embedded(&e, q)?;
        answer.timing = Timing { search_ms: t.elapsed().as_secs_f64() * 1e3, ..timing };
        Ok(answer)
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
        let q = &Query { colour, ..q.clone() };
        let v = self.query_vector(v, q.colour)?;
        let v = self.expanded(&index, v, q, Some(key))?;
        self.search_in(&index, &v, q, Some(key), trained)
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

    /// Search with an embedded query photo. A snapshot that does not say how much colour
    /// counts is searched by shape alone: its colour histogram is mostly its background
    /// (street photos, precision@5: 0.561 shape only, 0.547 at colour 0.3; BENCHMARKS.md).
    pub fn search_embedded(&self, e: &Embedded, q: &Query) -> Result<Answer> {
        let mut answer = if e.snapshot && q.colour.is_none() && self.info.colour_weight > 0.0 {
            let q = Query { colour: Some(0.0), ..q.clone() };
            self.search_with(&e.vector, &q, true)?
        } else {
            self.search_with(&e.vector, q, e.snapshot)?
        };
        answer.garment = e.garment;
        Ok(answer)
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
        let q = &Query { colour, ..q.clone() };
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

    /// The planner's top k (re-ordered by the trained projection, then by the predicted
    /// category, when asked), then the score floor and near-duplicate collapsing.
    fn search_in(
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
        // Collapsing drops results: look deeper so that k usually remain.
        let mut depth = if q.collapse.is_some() { (q.k * COLLAPSE_DEPTH).min(MAX_K) } else { q.k };
        let shares = self.category_shares(q)?;
        if trained.is_some() || shares.is_some() {
            depth = depth.max(RERANK_DEPTH);
        }
        let mut hits = index.search(v, depth, &q.filter, exclude, q.mode)?;
        let predicted = self.predict(
            &|c| index.value_counts(c),
            v,
            hits.iter().map(|h| (h.score, &h.metadata)),
            shares.is_some(),
        );
        let ranking = shares.map(|s| Ranking::new(&predicted, s)).filter(|r| !r.is_empty());
        // Search within the predicted category too, so that its best items are candidates
        // even when the photo's nearest vectors are elsewhere (a filter on that column
        // already decides).
        if let Some((column, value)) = ranking.as_ref().and_then(Ranking::within)
            && !q.filter.has_column(column)
        {
            let mut within = q.filter.clone();
            within.add(column, value);
            let seen: std::collections::HashSet<String> =
                hits.iter().map(|h| h.id.clone()).collect();
            let more = index.search(v, depth, &within, exclude, q.mode)?;
            hits.extend(more.into_iter().filter(|h| !seen.contains(&h.id)));
        }
        if let Some((projection, mix)) = trained {
            let candidates: Vec<(u32, &[f32], f32)> = hits
                .iter()
                .filter_map(|h| {
                    let key = index.key_of(&h.id)?;
                    Some((key, index.vector(key)?, h.score))
                })
                .collect();
            // Every hit comes from this snapshot, so each has its vector; were one missing,
            // the stored order stands rather than a re-order of a part.
            if candidates.len() == hits.len() {
                let scores = projection.rescore_items(&self.projected, v, &candidates, mix);
                for (h, s) in hits.iter_mut().zip(scores) {
                    h.score = s;
                }
                hits.sort_by(|a, b| b.score.total_cmp(&a.score));
            }
        }
        if let Some(r) = &ranking {
            for h in &mut hits {
                h.score = r.score(h.score, &h.metadata);
            }
            hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        }
        if let Some(floor) = q.min_score {
            hits.retain(|h| h.score >= floor);
        }
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
        Ok(Answer { hits, predicted, ..Answer::default() })
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

    /// Add (or replace) items with their photos, visible to searches once this returns.
    /// Every photo is checked and embedded before anything is written; the write itself
    /// is one transaction. Time goes in proportion to the items given, not to the index.
    pub fn add_items(&self, items: Vec<NewItem>) -> Result<WriteReport> {
        let started = Instant::now();
        self.check_writable()?;
        let mut seen = std::collections::HashSet::new();
        for item in &items {
            check_id(&item.id)?;
            if !seen.insert(item.id.as_str()) {
                return Err(bad_item(&item.id, "given twice"));
            }
            if let Some(col) = item.metadata.keys().find(|c| !self.info.columns.contains(c)) {
                return Err(Error::UnknownColumn {
                    column: col.clone(),
                    known: self.info.columns.join(", "),
                });
            }
        }
        // Decode and embed first: a bad photo refuses the whole batch before any write.
        let tensors: Vec<Vec<f32>> = items
            .par_iter()
            .map(|item| {
                let img = preprocess::decode(&item.photo)
                    .map_err(|e| bad_item(&item.id, &e.to_string()))?;
                preprocess::tensor(&img, self.embedder.spec(), None)
                    .map_err(|e| bad_item(&item.id, &e.to_string()))
            })
            .collect::<Result<_>>()?;
        let mut vectors = Vec::with_capacity(items.len() * self.info.dim);
        for chunk in tensors.chunks(32) {
            let flat: Vec<f32> = chunk.concat();
            vectors.extend(self.embedder.embed_tensors(&flat, chunk.len())?);
        }
        let photos_dir = self.dir.join(ADDED_PHOTOS_DIR);
        std::fs::create_dir_all(&photos_dir)
            .map_err(|source| Error::Io { path: photos_dir.clone(), source })?;
        let mut changes = Vec::with_capacity(items.len());
        for (item, vector) in items.iter().zip(vectors.chunks_exact(self.info.dim)) {
            let hash = blake3::hash(&item.photo).to_hex().to_string();
            let ext = image::guess_format(&item.photo)
                .ok()
                .and_then(|f| f.extensions_str().first().copied())
                .unwrap_or("img");
            let rel = format!("{ADDED_PHOTOS_DIR}/{}-{}.{ext}", file_safe(&item.id), &hash[..16]);
            write_atomically(&self.dir.join(&rel), &item.photo)?;
            let record = ItemRecord {
                path: rel,
                hash,
                metadata: item.metadata.clone(),
                key: None,
                added: true,
                cell: None,
            };
            changes.push(Change::Put { id: item.id.clone(), record, vector: vector.to_vec() });
        }

        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        let before = self.current_for_write()?;
        // Place each item in its partition cell: one comparison with the centroids each.
        if let Some(p) = before.partition() {
            for (change, cell) in changes.iter_mut().zip(p.assign(&vectors)) {
                if let Change::Put { record, .. } = change {
                    record.cell = Some(cell);
                }
            }
        }
        let mut report = WriteReport::default();
        let mut old_keys = Vec::new();
        let mut old_files = Vec::new();
        for item in &items {
            match before.key_of(&item.id) {
                Some(k) => {
                    old_keys.push(k);
                    if let Some(r) = before.record(k).filter(|r| r.added) {
                        old_files.push(r.path.clone());
                    }
                    report.replaced.push(item.id.clone());
                }
                None => report.added.push(item.id.clone()),
            }
        }
        let keys = self.store.apply(None, &changes)?;
        let new_items: Vec<Item> = changes
            .into_iter()
            .zip(keys)
            .filter_map(|(c, key)| match c {
                Change::Put { id, record, vector } => {
                    Some(Item { key, id, record: ItemRecord { key: Some(key), ..record }, vector })
                }
                _ => None,
            })
            .collect();
        let kept: std::collections::HashSet<&str> =
            new_items.iter().map(|i| i.record.path.as_str()).collect();
        let old_files: Vec<String> =
            old_files.into_iter().filter(|p| !kept.contains(p.as_str())).collect();
        let next = before.with_changes(new_items, &old_keys);
        report.total_items = next.len();
        self.index.store(Arc::new(next));
        self.remove_files(&old_files);
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Remove items by id, gone from searches once this returns. An unknown id refuses the
    /// whole batch.
    pub fn remove_items(&self, ids: &[String]) -> Result<WriteReport> {
        let started = Instant::now();
        self.check_writable()?;
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        let before = self.current_for_write()?;
        let mut keys = Vec::with_capacity(ids.len());
        let mut files = Vec::new();
        for id in ids {
            let key = before.key_of(id).ok_or_else(|| Error::UnknownId(id.clone()))?;
            if let Some(r) = before.record(key).filter(|r| r.added) {
                files.push(r.path.clone());
            }
            keys.push(key);
        }
        let changes: Vec<Change> = ids.iter().map(|id| Change::Delete { id: id.clone() }).collect();
        self.store.apply(None, &changes)?;
        let next = before.with_changes(Vec::new(), &keys);
        let report = WriteReport {
            removed: ids.to_vec(),
            total_items: next.len(),
            seconds: started.elapsed().as_secs_f64(),
            ..Default::default()
        };
        self.index.store(Arc::new(next));
        self.remove_files(&files);
        Ok(report)
    }

    /// The snapshot a write builds on (the caller holds the writer lock). When another
    /// process has replaced the partition since it was loaded (`index`, `repartition`),
    /// it is reloaded first, so that new items are placed in the stored partition's cells.
    fn current_for_write(&self) -> Result<Arc<VectorIndex>> {
        let current = self.index();
        if self.store.partition_generation()? == current.generation() {
            return Ok(current);
        }
        tracing::info!("the index's partition changed on disk; reloading the index");
        let fresh = Arc::new(VectorIndex::load(&self.store, self.info.dim)?);
        self.index.store(fresh.clone());
        Ok(fresh)
    }

    fn check_writable(&self) -> Result<()> {
        // v1 items have no keys; v2 and later take writes (a v2 index just has no partition).
        if self.info.format_version < 2 {
            return Err(Error::BadParameter {
                name: "index",
                message: format!(
                    "{} is in format v{}; run `lookalike index` on it once to upgrade it before adding or removing items",
                    self.dir.display(),
                    self.info.format_version
                ),
            });
        }
        Ok(())
    }

    /// Photos of removed or replaced added items; a leftover file only wastes space.
    fn remove_files(&self, rels: &[String]) {
        for rel in rels {
            if let Err(e) = std::fs::remove_file(self.dir.join(rel)) {
                tracing::warn!("cannot remove {rel}: {e}");
            }
        }
    }
}

fn poisoned() -> Error {
    Error::Store(StoreError::Backend("a writer panicked; reopen the index".into()))
}

fn bad_item(id: &str, message: &str) -> Error {
    Error::BadItem { id: id.to_string(), message: message.to_string() }
}

/// Ids become file names and URL segments: printable, no path separators, not too long.
fn check_id(id: &str) -> Result<()> {
    let problem = if id.trim().is_empty() {
        Some("the id is empty")
    } else if id.len() > MAX_ID_LEN {
        Some("the id is longer than 200 bytes")
    } else if id.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        Some("the id holds a control character or a slash")
    } else {
        None
    };
    match problem {
        Some(p) => Err(bad_item(id, p)),
        None => Ok(()),
    }
}

fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect()
}

/// Write aside, then rename: a crash never leaves half a photo under the final name.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
