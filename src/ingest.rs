//! Building and refreshing an index from a catalogue (a folder, or a prefix in object storage).
//!
//! The pipeline: scan the folder, read each photo once (hash it; unchanged photos stop
//! there), decode and preprocess in parallel on the rayon pool, batch the tensors into
//! the model, and commit each batch to the store in one transaction. A run that is
//! interrupted keeps every committed batch, and the next run picks up where it stopped,
//! since unchanged photos are never embedded again.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use crate::catalog::{self, Metadata, Photo, Shard};
use crate::embed::{BackendKind, Embedder};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::preprocess;
use crate::store::{Change, FORMAT_VERSION, IndexInfo, ItemRecord};

/// File name of the model copy kept inside every index folder.
pub use crate::location::MODEL_FILE;

/// Colour weight of a new index (see [`crate::colour`]; chosen on `lookalike eval`,
/// BENCHMARKS.md).
pub const DEFAULT_COLOUR_WEIGHT: f32 = 0.3;

/// Largest colour weight accepted (beyond it colour alone decides).
pub const MAX_COLOUR_WEIGHT: f32 = 4.0;

/// How to build an index.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// CSV with an `id` column; `None` uses `styles.csv` in the catalogue folder if any.
    pub metadata: Option<PathBuf>,
    /// `fashion`, `lite0`, `lite2` or a manifest path; `None` keeps the index's model
    /// ([`model::DEFAULT_MODEL`] if new).
    pub model: Option<String>,
    pub backend: BackendKind,
    /// Weight of the colour descriptor for a new index (`None`: [`DEFAULT_COLOUR_WEIGHT`]);
    /// an existing index keeps its own, and asking for another is refused.
    pub colour_weight: Option<f32>,
    /// Train the partition anew even if the current one still fits.
    pub repartition: bool,
    pub batch_size: usize,
    /// Embed only this shard of the catalogue (one of several processes filling one
    /// index): its photos are added, re-embedded or removed, the others' left alone, and
    /// the partition is never trained (this shard's new items are placed in it, if the
    /// index has one).
    pub shard: Option<Shard>,
    pub progress: bool,
    /// The vector index a new Milvus collection's items get (`None`: HNSW); refused for
    /// a folder, and for a collection indexed with another kind.
    pub milvus_index: Option<crate::milvus::VectorIndexKind>,
    /// Set to stop after the batch in flight (Ctrl-C).
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            metadata: None,
            model: None,
            backend: BackendKind::Auto,
            colour_weight: None,
            repartition: false,
            batch_size: 32,
            shard: None,
            progress: false,
            milvus_index: None,
            cancel: None,
        }
    }
}

/// What an indexing run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct IndexReport {
    /// Photos found (in this run's shard, for a sharded run).
    pub photos_found: usize,
    /// The shard this run embedded (`I/N`), for a sharded run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub added: usize,
    pub reembedded: usize,
    pub metadata_updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// (relative path, reason) of photos that could not be indexed.
    pub skipped: Vec<(String, String)>,
    pub ignored_files: usize,
    pub duplicate_photo_ids: usize,
    pub metadata_file: Option<String>,
    /// Why the metadata file found beside the photos was not used (its items keep the
    /// metadata they had).
    pub metadata_unused: Option<String>,
    pub photos_without_metadata: usize,
    pub metadata_rows_without_photo: usize,
    pub csv_ragged_rows: usize,
    pub csv_rows_without_id: usize,
    pub csv_duplicate_ids: usize,
    pub csv_unreadable_rows: usize,
    /// How the metadata file was read when it was not plain UTF-8.
    pub csv_encoding: Option<String>,
    /// The metadata file's field delimiter.
    pub csv_delimiter: Option<String>,
    /// Header names the metadata file repeats (the first column of each is used).
    pub csv_repeated_columns: Vec<String>,
    pub total_items: usize,
    pub backend: String,
    pub model: String,
    pub seconds: f64,
    /// Photos embedded per second, whole pipeline.
    pub images_per_second: f64,
    /// Cells of the index's partition (the approximate index; 0: none).
    pub cells: usize,
    /// Time spent training the partition or placing new items in it.
    pub partition_seconds: f64,
    pub interrupted: bool,
}

impl std::fmt::Display for IndexReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} photos found; index now holds {} items (model {}, backend {})",
            self.photos_found, self.total_items, self.model, self.backend
        )?;
        if let Some(s) = &self.shard {
            writeln!(
                f,
                "  shard {s}: only this shard's photos were added, re-embedded or removed"
            )?;
        }
        writeln!(
            f,
            "  added {}, re-embedded {}, metadata updated {}, unchanged {}, removed {}",
            self.added, self.reembedded, self.metadata_updated, self.unchanged, self.removed
        )?;
        let embedded = self.added + self.reembedded;
        writeln!(
            f,
            "  embedded {embedded} photos in {:.1} s: {:.1} images/s; partition of {} cells fitted in {:.1} s",
            self.seconds, self.images_per_second, self.cells, self.partition_seconds
        )?;
        match &self.metadata_file {
            Some(m) if self.metadata_unused.is_some() => writeln!(
                f,
                "  metadata {m} not used: {}; items keep the metadata they had",
                self.metadata_unused.as_deref().unwrap_or_default()
            )?,
            Some(m) => writeln!(
                f,
                "  metadata {m}: {} photos without a row, {} rows without a photo, {} ragged rows, {} rows without id, {} duplicate ids, {} unreadable rows",
                self.photos_without_metadata,
                self.metadata_rows_without_photo,
                self.csv_ragged_rows,
                self.csv_rows_without_id,
                self.csv_duplicate_ids,
                self.csv_unreadable_rows
            )?,
            None => writeln!(f, "  no metadata file")?,
        }
        if let Some(e) = &self.csv_encoding {
            writeln!(f, "  metadata read as {e} (not UTF-8)")?;
        }
        if let Some(d) = self.csv_delimiter.as_deref().filter(|d| *d != ",") {
            writeln!(f, "  metadata fields separated by {d:?}")?;
        }
        if !self.csv_repeated_columns.is_empty() {
            writeln!(
                f,
                "  metadata columns named twice (the first of each used): {}",
                self.csv_repeated_columns.join(", ")
            )?;
        }
        if self.ignored_files > 0 || self.duplicate_photo_ids > 0 {
            writeln!(
                f,
                "  ignored {} non-image files, {} photos repeating an id",
                self.ignored_files, self.duplicate_photo_ids
            )?;
        }
        if !self.skipped.is_empty() {
            writeln!(f, "  skipped {} photos:", self.skipped.len())?;
            for (p, why) in self.skipped.iter().take(50) {
                writeln!(f, "    {p}: {why}")?;
            }
            if self.skipped.len() > 50 {
                writeln!(f, "    ... and {} more", self.skipped.len() - 50)?;
            }
        }
        if self.interrupted {
            writeln!(f, "  interrupted: everything committed so far is kept; run again to finish")?;
        }
        Ok(())
    }
}

/// What the parallel stage made of one photo.
enum Prepared {
    Unchanged,
    Record { id: String, record: ItemRecord },
    Embed { id: String, record: ItemRecord, tensor: Vec<f32>, is_new: bool },
    Skipped { rel: String, reason: String },
}

/// The colour weight of a run: the index's own, or the one asked for a new index.
fn choose_colour_weight(existing: Option<&IndexInfo>, requested: Option<f32>) -> Result<f32> {
    match (existing, requested) {
        (Some(info), Some(w)) if (w - info.colour_weight).abs() > 1e-6 => {
            Err(Error::BadParameter {
                name: "colour-weight",
                message: format!(
                    "the index was built with colour weight {} and its vectors hold it; use a \
                     new index folder for {w} (or give the weight per query)",
                    info.colour_weight
                ),
            })
        }
        (Some(info), _) => Ok(info.colour_weight),
        (None, w) => Ok(w.unwrap_or(DEFAULT_COLOUR_WEIGHT)),
    }
}

/// Index (or refresh the index of) the catalogue at `catalog_dir` (a folder, or an
/// `s3://BUCKET/PREFIX` address) into the index at `location` (created when there is
/// none).
pub fn index_catalog(
    catalog_dir: &Path,
    location: &Location,
    opts: &IndexOptions,
) -> Result<IndexReport> {
    if opts.batch_size == 0 || opts.batch_size > 1024 {
        return Err(Error::BadParameter {
            name: "batch-size",
            message: format!("{} is not in 1..=1024", opts.batch_size),
        });
    }
    if opts.shard.is_some() && opts.repartition {
        return Err(Error::BadParameter {
            name: "repartition",
            message: "a sharded run never trains the partition (it would move the other shards' \
                      items while they write); run `lookalike repartition` once every shard is done"
                .into(),
        });
    }
    if let Some(w) = opts.colour_weight
        && !(0.0..=MAX_COLOUR_WEIGHT).contains(&w)
    {
        return Err(Error::BadParameter {
            name: "colour-weight",
            message: format!("{w} is not in 0..={MAX_COLOUR_WEIGHT}"),
        });
    }
    let started = Instant::now();
    let source = catalog::Source::open(catalog_dir)?;
    let mut scan = source.scan()?;
    let mine = |id: &str| opts.shard.is_none_or(|s| s.holds(id));
    scan.photos.retain(|p| mine(&p.id));
    // A table asked for with --metadata must be usable; a styles.csv merely found beside
    // the photos that is not (no id column, not CSV) is reported and left out, and the
    // items keep the metadata the index already had.
    let table = source.metadata(opts.metadata.as_deref())?;
    let metadata_file = table.as_ref().map(|t| t.name.clone());
    let (metadata, metadata_unused) = match table.map(|t| t.table) {
        Some(table) if opts.metadata.is_some() => (Some(table?), None),
        Some(Ok(md)) => (Some(md), None),
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (None, None),
    };

    let store = location.open_or_create_with(opts.milvus_index)?;
    let existing_info = store.info()?;
    let colour_weight = choose_colour_weight(existing_info.as_ref(), opts.colour_weight)?;
    // A folder keeps its own copy of the model; a collection records its name and hash.
    let (model, model_hash) =
        location.adopt_model(existing_info.as_ref(), opts.model.as_deref())?;
    let embedder = Embedder::new(&model, opts.backend)?.with_colour(colour_weight);

    let columns = match (&metadata, &existing_info) {
        (Some(md), _) => md.columns.clone(),
        (None, Some(info)) => info.columns.clone(),
        (None, None) => Vec::new(),
    };
    let catalog = source.describe();
    let info = IndexInfo {
        format_version: FORMAT_VERSION,
        model: existing_info.as_ref().map_or_else(|| model.spec.clone(), |i| i.model.clone()),
        model_hash,
        dim: embedder.dim(),
        columns,
        catalog,
        colour_weight,
    };

    let existing: HashMap<String, ItemRecord> = store.records()?.into_iter().collect();
    let mut report = IndexReport {
        photos_found: scan.photos.len(),
        ignored_files: scan.ignored,
        duplicate_photo_ids: scan.duplicate_ids.len(),
        metadata_file,
        metadata_unused,
        shard: opts.shard.map(|s| s.to_string()),
        backend: embedder.backend_name().to_string(),
        model: info.model.name.clone(),
        // Links that lead outside, nowhere or in a loop: left out, each with its reason.
        skipped: scan.unusable.clone(),
        ..Default::default()
    };
    if let Some(md) = &metadata {
        report.csv_ragged_rows = md.ragged_rows;
        report.csv_rows_without_id = md.rows_without_id;
        report.csv_duplicate_ids = md.duplicate_ids;
        report.csv_unreadable_rows = md.unreadable_rows;
        report.csv_encoding = md.encoding.clone();
        report.csv_delimiter = Some(md.delimiter.to_string());
        report.csv_repeated_columns = md.repeated_columns.clone();
        let found: std::collections::HashSet<&str> =
            scan.photos.iter().map(|p| p.id.as_str()).collect();
        report.metadata_rows_without_photo =
            md.rows.keys().filter(|id| mine(id) && !found.contains(id.as_str())).count();
        report.photos_without_metadata =
            scan.photos.iter().filter(|p| !md.rows.contains_key(&p.id)).count();
    }

    // Deletions and the description land first, in one transaction.
    let present: std::collections::HashSet<&str> =
        scan.photos.iter().map(|p| p.id.as_str()).collect();
    // Items added through `add` or the API are not the folder's: they stay.
    let deletions: Vec<Change> = existing
        .iter()
        .filter(|(id, r)| !r.added && mine(id) && !present.contains(id.as_str()))
        .map(|(id, _)| Change::Delete { id: id.clone() })
        .collect();
    report.removed = deletions.len();
    store.apply(Some(&info), &deletions)?;

    let bar = progress_bar(opts.progress, scan.photos.len() as u64);
    let embed_started = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded::<Vec<Prepared>>(2);
    let photos = &scan.photos;
    let batch = opts.batch_size;
    let cancel = opts.cancel.clone();
    let outcome: Result<()> = std::thread::scope(|scope| {
        // Producer: read, hash, decode and preprocess one batch at a time, in parallel.
        scope.spawn(|| {
            for chunk in photos.chunks(batch) {
                if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                    break;
                }
                let prepared: Vec<Prepared> = chunk
                    .par_iter()
                    .map(|p| {
                        let old = existing.get(&p.id);
                        prepare(&source, p, old, metadata.as_ref(), embedder.spec())
                    })
                    .collect();
                if tx.send(prepared).is_err() {
                    break;
                }
            }
            drop(tx);
        });
        // Consumer: batched inference and one commit per batch. The receiver is this
        // closure's own, so that an error returning from it drops the receiver before the
        // scope waits for the producer, which then stops at its next send (were it kept
        // outside, a failed commit would leave the producer blocked on a full channel and
        // the run hanging).
        let rx = rx;
        for prepared in rx.iter() {
            let n_in = prepared.len() as u64;
            let mut changes = Vec::with_capacity(prepared.len());
            let mut tensors = Vec::new();
            let mut pending = Vec::new();
            for p in prepared {
                match p {
                    Prepared::Unchanged => report.unchanged += 1,
                    Prepared::Record { id, record } => {
                        report.metadata_updated += 1;
                        changes.push(Change::Record { id, record });
                    }
                    Prepared::Skipped { rel, reason } => report.skipped.push((rel, reason)),
                    Prepared::Embed { id, record, tensor, is_new } => {
                        tensors.extend_from_slice(&tensor);
                        pending.push((id, record, is_new));
                    }
                }
            }
            if !pending.is_empty() {
                let vectors = embedder.embed_tensors(&tensors, pending.len())?;
                for ((id, record, is_new), v) in
                    pending.into_iter().zip(vectors.chunks_exact(info.dim))
                {
                    if is_new {
                        report.added += 1
                    } else {
                        report.reembedded += 1
                    }
                    changes.push(Change::Put { id, record, vector: v.to_vec() });
                }
            }
            if !changes.is_empty() {
                store.apply(None, &changes)?;
            }
            bar.inc(n_in);
            if opts.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                report.interrupted = true;
                break;
            }
        }
        Ok(())
    });
    outcome?;
    bar.finish_and_clear();
    // Train the partition, or place this run's new items in it, in one transaction. Until
    // then (an interrupted run) unplaced items are scanned by every search, and the next
    // run places them.
    if !report.interrupted {
        // Shown as the progress bar was: the library itself never prints.
        let stage = progress_spinner(
            opts.progress,
            match opts.shard {
                Some(s) => format!("placing shard {s}'s new items in the partition..."),
                None => "partitioning the index...".to_string(),
            },
        );
        let p = match opts.shard {
            Some(_) => crate::index::partition::place(store.as_ref(), info.dim, &mine)?,
            None => crate::index::partition::refresh(store.as_ref(), info.dim, opts.repartition)?,
        };
        stage.finish_and_clear();
        report.cells = p.cells;
        report.partition_seconds = p.seconds;
    }
    store.flush()?;
    report.total_items = store.len()?;
    report.seconds = started.elapsed().as_secs_f64();
    let embedded = (report.added + report.reembedded) as f64;
    let pipeline_secs = embed_started.elapsed().as_secs_f64();
    report.images_per_second = if pipeline_secs > 0.0 { embedded / pipeline_secs } else { 0.0 };
    report.skipped.sort();
    Ok(report)
}

/// Train an index's partition anew, without its catalogue folder (an index grown through
/// `add` or the API). One transaction; an older format is upgraded first.
pub fn repartition(location: &Location) -> Result<crate::index::partition::RefreshReport> {
    let (store, info) = location.open_for_writing()?;
    let report = crate::index::partition::refresh(store.as_ref(), info.dim, true)?;
    store.flush()?;
    Ok(report)
}

fn prepare(
    source: &catalog::Source,
    photo: &Photo,
    old: Option<&ItemRecord>,
    metadata: Option<&Metadata>,
    spec: &crate::model::ModelSpec,
) -> Prepared {
    let bytes = match source.read(photo) {
        Ok(b) => b,
        Err(e) => {
            return Prepared::Skipped {
                rel: photo.rel.clone(),
                reason: format!("cannot read: {e}"),
            };
        }
    };
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let fields: BTreeMap<String, String> = match (metadata, old) {
        (Some(md), _) => md.rows.get(&photo.id).cloned().unwrap_or_default(),
        // Without a metadata file this run, keep what the index already had.
        (None, Some(o)) => o.metadata.clone(),
        (None, None) => BTreeMap::new(),
    };
    let mut record = ItemRecord {
        path: photo.rel.clone(),
        hash,
        metadata: fields,
        key: None,
        added: false,
        cell: None,
    };
    if let Some(o) = old
        && o.hash == record.hash
        && !o.added
    {
        // Same photo, same vector: its key and cell stay.
        record.key = o.key;
        record.cell = o.cell;
        if *o == record {
            return Prepared::Unchanged;
        }
        return Prepared::Record { id: photo.id.clone(), record };
    }
    let tensor = preprocess::decode(&bytes).and_then(|img| preprocess::tensor(&img, spec, None));
    match tensor {
        Ok(tensor) => {
            Prepared::Embed { id: photo.id.clone(), record, tensor, is_new: old.is_none() }
        }
        Err(e) => Prepared::Skipped { rel: photo.rel.clone(), reason: e.to_string() },
    }
}

fn progress_spinner(show: bool, message: String) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let spinner = indicatif::ProgressBar::new_spinner().with_message(message);
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    spinner
}

fn progress_bar(show: bool, len: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} photos, {per_sec}, ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}
