//! The `lookalike` command: parses arguments, calls the library, maps errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lookalike::embed::BackendKind;
use lookalike::engine::NewItem;
use lookalike::engine::{self, Engine, Query};
use lookalike::eval;
use lookalike::index::SearchMode;
use lookalike::ingest::{self, IndexOptions};
use lookalike::preprocess::{Crop, QueryResize};

#[derive(Parser)]
#[command(name = "lookalike", version, about = "Visual search for fashion catalogues")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct BackendArg {
    /// Inference backend: auto (ONNX Runtime if found, else tract), ort, tract.
    #[arg(long, default_value = "auto", value_parser = parse_backend)]
    backend: BackendKind,
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse()
}

#[derive(Args, Clone, Copy)]
struct ModeArg {
    /// Compare the query with every candidate (default below 200,000 candidates, or with a
    /// filter keeping under a tenth of the index).
    #[arg(long, conflicts_with = "ann")]
    exact: bool,
    /// Scan only the partition cells nearest to the query (default from 200,000
    /// candidates on).
    #[arg(long)]
    ann: bool,
}

impl ModeArg {
    fn mode(self) -> SearchMode {
        match (self.exact, self.ann) {
            (true, _) => SearchMode::Exact,
            (_, true) => SearchMode::Ann,
            _ => SearchMode::Auto,
        }
    }
}

#[derive(Args, Clone, Copy)]
struct ColourArg {
    /// How much colour counts against shape: 0 (shape only) to 4 (default: the index's
    /// weight, 0.3 for new indexes; shape only for snapshots).
    #[arg(long)]
    colour: Option<f32>,
}

#[derive(Args, Clone, Copy)]
struct ExpandArg {
    /// Query expansion: fold the best N results into the query and search again (0: off).
    #[arg(long, value_name = "N")]
    expand: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Index (or refresh) a catalogue folder of product photos.
    Index {
        /// Folder of photos, searched recursively; a photo's id is its file stem.
        catalog: PathBuf,
        /// Index folder to create or update.
        #[arg(long)]
        index: PathBuf,
        /// CSV with an `id` column (default: styles.csv in the catalogue folder, if any).
        #[arg(long)]
        metadata: Option<PathBuf>,
        /// Model: lite0 (default), lite2, lite0-int8 (faster, slightly less precise), or the
        /// path of a model manifest (.toml).
        #[arg(long)]
        model: Option<String>,
        /// Weight of the colour descriptor appended to each embedding, for a new index
        /// (default 0.3; 0: shape only). Queries may ask for another with --colour.
        #[arg(long)]
        colour_weight: Option<f32>,
        /// Train the partition (the approximate index) anew even if the current one still
        /// fits the index's size (e.g. after many items were added with `add`).
        #[arg(long)]
        repartition: bool,
        /// Photos per inference batch.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        backend: BackendArg,
    },
    /// Find the catalogue items most similar to photos (or to an indexed item).
    Search {
        #[arg(long)]
        index: PathBuf,
        /// Query photos.
        images: Vec<PathBuf>,
        /// Number of results.
        #[arg(short, long, default_value_t = 5)]
        k: usize,
        /// Keep only items with column=value (repeat; same column = any of the values).
        #[arg(long = "filter", value_name = "COLUMN=VALUE")]
        filters: Vec<String>,
        /// Search only this region of each photo: x,y,w,h in pixels.
        #[arg(long)]
        crop: Option<Crop>,
        /// Search from an indexed item instead of a photo.
        #[arg(long, value_name = "ID")]
        similar_to: Option<String>,
        /// How query photos are squared: auto (pad studio shots, crop snapshots), pad, crop.
        #[arg(long, default_value = "auto")]
        query_resize: QueryResize,
        /// One JSON object per query, one per line.
        #[arg(long)]
        json: bool,
        /// Leave out results scoring below this (-1..1).
        #[arg(long)]
        min_score: Option<f32>,
        /// Leave out results nearly identical to a better one: cosine at least this (0..1,
        /// e.g. 0.95).
        #[arg(long)]
        collapse: Option<f32>,
        #[command(flatten)]
        expand: ExpandArg,
        #[command(flatten)]
        mode: ModeArg,
        #[command(flatten)]
        colour: ColourArg,
        #[command(flatten)]
        backend: BackendArg,
    },
    /// Add photos to an index (or replace items with the same ids), without re-indexing.
    Add {
        #[arg(long)]
        index: PathBuf,
        /// Photos to add; an item's id is its file stem (or --id).
        #[arg(required = true)]
        photos: Vec<PathBuf>,
        /// Id of the item (one photo only).
        #[arg(long)]
        id: Option<String>,
        /// CSV with an `id` column giving the new items' metadata.
        #[arg(long)]
        metadata: Option<PathBuf>,
        /// Metadata for every photo given: column=value (repeat).
        #[arg(long = "set", value_name = "COLUMN=VALUE")]
        set: Vec<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        backend: BackendArg,
    },
    /// Remove items from an index by id.
    Remove {
        #[arg(long)]
        index: PathBuf,
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Train the index's partition (its approximate index) anew, e.g. after it has grown
    /// through `add`; `index` does it by itself once twice the cells are wanted.
    Repartition {
        #[arg(long)]
        index: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Measure retrieval quality: leave-one-out over the catalogue, or outside photos.
    Eval {
        #[arg(long)]
        index: PathBuf,
        /// Every catalogue item queries the rest (the default without --queries).
        #[arg(long)]
        leave_one_out: bool,
        /// Relevance label: a column, or columns joined by '+' (repeat for several).
        /// Default: articleType, subCategory, articleType+baseColour (those present).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Column whose values break the figures down (default: masterCategory if present).
        #[arg(long)]
        group_by: Option<String>,
        /// CSV of outside photos: file,label,...,match_article_types.
        #[arg(long)]
        queries: Option<PathBuf>,
        /// Folder of the photos named in --queries (default: the CSV's folder/images).
        #[arg(long)]
        images: Option<PathBuf>,
        /// Column that --queries' match lists name.
        #[arg(long, default_value = "articleType")]
        match_column: String,
        #[arg(short, long, default_value_t = 5)]
        k: usize,
        /// Only evaluate (and search among) items with column=value.
        #[arg(long = "filter", value_name = "COLUMN=VALUE")]
        filters: Vec<String>,
        /// How outside photos are squared: auto, pad, crop.
        #[arg(long, default_value = "auto")]
        query_resize: QueryResize,
        /// One JSON object (per mode) instead of tables.
        #[arg(long)]
        json: bool,
        /// Leave-one-out within the held-out split only (a fixed 20% of the items by a hash
        /// of their id, never used for training): queries and ranked items both from it.
        #[arg(long, conflicts_with_all = ["ann", "expand"])]
        holdout: bool,
        /// Write an HTML page of sample queries beside their top-k.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Queries shown in the HTML report.
        #[arg(long, default_value_t = 60)]
        report_samples: usize,
        #[command(flatten)]
        expand: ExpandArg,
        #[command(flatten)]
        mode: ModeArg,
        #[command(flatten)]
        colour: ColourArg,
        #[command(flatten)]
        backend: BackendArg,
    },
    /// Serve the web page and the JSON API.
    Serve {
        #[arg(long)]
        index: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Catalogue folder to serve photos from (default: the one the index was built from).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Largest accepted upload, in MB.
        #[arg(long, default_value_t = 20)]
        max_upload_mb: usize,
        /// Searches in flight before the server answers 503 (busy).
        #[arg(long, default_value_t = 32)]
        max_inflight: usize,
        /// Bearer token that enables the write endpoints (POST /api/items,
        /// DELETE /api/items/{id}); without it they are disabled.
        #[arg(long, env = "LOOKALIKE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        #[command(flatten)]
        backend: BackendArg,
    },
    /// Measure speed and memory (figures as JSON lines).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Describe an index: model, item count, dimension, columns.
    Info {
        #[arg(long)]
        index: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Each indexing stage alone (read, decode, resize+normalise, inference, store).
    Stages {
        catalog: PathBuf,
        /// Photos to use (the first N in path order).
        #[arg(long, default_value_t = 2000)]
        limit: usize,
        #[arg(long, default_value = "lite0")]
        model: String,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[command(flatten)]
        backend: BackendArg,
    },
    /// Exact search latency over the index's vectors, and over synthetic copies at scale.
    Search {
        #[arg(long)]
        index: PathBuf,
        /// Queries timed one by one.
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Also measure at these catalogue sizes (real vectors perturbed).
        #[arg(long = "scale")]
        scales: Vec<usize>,
        /// Queries scored together for the batched figure.
        #[arg(long, default_value_t = 256)]
        batch: usize,
    },
    /// Live writes: a batch of photos, then photos one write each, into a copy of an index.
    Add {
        #[arg(long)]
        index: PathBuf,
        /// Folder of photos to add (the first --count, in path order).
        photos: PathBuf,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// How many of them are added one write each (the rest in one batch).
        #[arg(long, default_value_t = 200)]
        single: usize,
        #[command(flatten)]
        backend: BackendArg,
    },
    /// Approximate search (partition cells) against exact search at scale: build time,
    /// recall, latency, filtered queries.
    Ann {
        #[arg(long)]
        index: PathBuf,
        /// Catalogue size (real vectors perturbed).
        #[arg(long, default_value_t = 1_000_000)]
        scale: usize,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Numbers of partition cells to probe, swept.
        #[arg(long, value_delimiter = ',', default_value = "8,16,32,64,128")]
        probes: Vec<usize>,
        /// Catalogue vectors the synthetic ones are made from (default: all). Fewer give
        /// a smaller catalogue the near-duplicate clusters of a bigger one.
        #[arg(long)]
        sources: Option<usize>,
        /// Scratch folder for the store (default: a temporary folder).
        #[arg(long)]
        scratch: Option<PathBuf>,
    },
    /// Photo in, results out, in process: decode + embed + search latency.
    Query {
        #[arg(long)]
        index: PathBuf,
        images: Vec<PathBuf>,
        /// Times each photo is searched.
        #[arg(long, default_value_t = 20)]
        repeat: usize,
        #[command(flatten)]
        backend: BackendArg,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOOKALIKE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            let user =
                e.downcast_ref::<lookalike::Error>().is_some_and(lookalike::Error::is_user_error);
            ExitCode::from(if user { 2 } else { 1 })
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Index {
            catalog,
            index,
            metadata,
            model,
            colour_weight,
            repartition,
            batch_size,
            json,
            backend,
        } => {
            let cancel = Arc::new(AtomicBool::new(false));
            let flag = cancel.clone();
            // First Ctrl-C: finish the batch in flight and commit; second: default action.
            let _ = ctrlc::set_handler(move || {
                if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!(
                    "\ninterrupted: committing the current batch, then stopping (Ctrl-C again to abort)"
                );
            });
            let opts = IndexOptions {
                metadata,
                model,
                backend: backend.backend,
                colour_weight,
                repartition,
                batch_size,
                progress: !json,
                cancel: Some(cancel),
            };
            let report = ingest::index_catalog(&catalog, &index, &opts)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{report}");
            }
            Ok(if report.interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS })
        }
        Command::Search {
            index,
            images,
            k,
            filters,
            crop,
            similar_to,
            query_resize,
            json,
            min_score,
            collapse,
            expand,
            mode,
            colour,
            backend,
        } => {
            let engine = Engine::open(&index, backend.backend)?;
            let query = Query {
                k,
                filter: engine.filter(&filters)?,
                crop,
                resize: query_resize,
                mode: mode.mode(),
                colour: colour.colour,
                min_score,
                collapse,
                expand: expand.expand,
            };
            if images.is_empty() && similar_to.is_none() {
                anyhow::bail!(lookalike::Error::BadParameter {
                    name: "images",
                    message: "give at least one photo, or --similar-to ID".into()
                });
            }
            if let Some(id) = similar_to {
                let hits = engine.similar_to(&id, &query)?;
                print_hits(&id, &hits, None, json)?;
            }
            let mut failed = false;
            for path in &images {
                let bytes = std::fs::read(path)
                    .map_err(|source| lookalike::Error::Io { path: path.clone(), source })
                    .with_context(|| format!("query {}", path.display()));
                let result = bytes.and_then(|b| Ok(engine.search_photo(&b, &query)?));
                match result {
                    Ok((hits, timing)) => {
                        print_hits(&path.display().to_string(), &hits, Some(timing), json)?
                    }
                    Err(e) if images.len() > 1 => {
                        // One bad photo among many must not hide the others' results.
                        failed = true;
                        eprintln!("error: {}: {e:#}", path.display());
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({"query": path.display().to_string(), "error": format!("{e:#}")})
                            );
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(if failed { ExitCode::from(2) } else { ExitCode::SUCCESS })
        }
        Command::Eval {
            index,
            leave_one_out,
            labels,
            group_by,
            queries,
            images,
            match_column,
            k,
            filters,
            query_resize,
            json,
            report,
            report_samples,
            holdout,
            expand,
            mode,
            colour,
            backend,
        } => {
            let engine = Engine::open(&index, backend.backend)?;
            let segment = engine.index().compacted();
            let segment =
                if holdout { std::sync::Arc::new(eval::holdout(&segment)) } else { segment };
            let mode = mode.mode();
            let filter = engine.filter(&filters)?;
            let columns = engine.info().columns.clone();
            let root = engine.info().catalog.clone();
            let samples = if report.is_some() { report_samples } else { 0 };
            let mut rows = Vec::new();
            let mut summary = String::new();
            if leave_one_out || queries.is_none() {
                let specs = if labels.is_empty() {
                    ["articleType", "subCategory", "articleType+baseColour"]
                        .iter()
                        .filter(|l| l.split('+').all(|c| columns.iter().any(|k| k == c)))
                        .map(|s| s.to_string())
                        .collect()
                } else {
                    labels
                };
                if specs.is_empty() {
                    anyhow::bail!(lookalike::Error::BadParameter {
                        name: "label",
                        message: format!("give --label COLUMN (columns: {})", columns.join(", "))
                    });
                }
                let parsed = eval::parse_labels(&specs, &columns)?;
                let group = group_by
                    .clone()
                    .or_else(|| columns.iter().find(|c| *c == "masterCategory").cloned());
                let t = std::time::Instant::now();
                // `--ann`: every item's ranking through the partition, as `search --similar-to`.
                let ranker = |row: usize| -> lookalike::Result<Vec<lookalike::kernel::Scored>> {
                    let q = Query {
                        k,
                        filter: filter.clone(),
                        mode,
                        colour: colour.colour,
                        expand: expand.expand,
                        ..Query::default()
                    };
                    let hits = engine.similar_to(segment.id(row), &q)?;
                    Ok(hits
                        .iter()
                        .filter_map(|h| {
                            let row = segment.row_of(&h.id)?;
                            Some(lookalike::kernel::Scored { row, score: h.score })
                        })
                        .collect())
                };
                // The exact path scores stored vectors in blocks: with --colour, each query
                // is reweighted first; without, the stored vectors are the queries.
                let query_of = |v: &[f32]| engine.query_vector(v, colour.colour);
                let query_of = colour.colour.is_some().then_some(&query_of as &eval::QueryOf<'_>);
                let r = eval::leave_one_out(
                    &segment,
                    k,
                    &parsed,
                    group.as_deref(),
                    &filter,
                    samples,
                    // Through the search path when it differs from a plain exact scan.
                    (mode == SearchMode::Ann || expand.expand.is_some_and(|n| n > 0))
                        .then_some(&ranker as &eval::Ranker<'_>),
                    query_of,
                )?;
                let secs = t.elapsed().as_secs_f64();
                if json {
                    let mut v = serde_json::to_value(&r)?;
                    v["mode"] = "leave-one-out".into();
                    v["split"] = if holdout { "holdout" } else { "all" }.into();
                    v["seconds"] = secs.into();
                    println!("{v}");
                } else {
                    let mut text = loo_table(&r, secs);
                    if holdout {
                        text = format!(
                            "held-out split ({}% of items by id hash): {text}",
                            eval::HOLDOUT_PERCENT
                        );
                    }
                    print!("{text}");
                    summary.push_str(&text);
                }
                rows.extend(eval::loo_rows(&segment, root.as_deref(), &r, &parsed));
            }
            if let Some(qcsv) = queries {
                let dir = images.unwrap_or_else(|| {
                    qcsv.parent().unwrap_or(std::path::Path::new(".")).join("images")
                });
                let qs = eval::read_queries(&qcsv, &dir)?;
                let query = Query {
                    k,
                    filter: filter.clone(),
                    resize: query_resize,
                    mode,
                    colour: colour.colour,
                    expand: expand.expand,
                    ..Query::default()
                };
                let r = eval::photo_queries(&engine, qs.clone(), &match_column, &query, samples)?;
                if json {
                    let mut v = serde_json::to_value(&r)?;
                    v["mode"] = "queries".into();
                    println!("{v}");
                } else {
                    let text = photo_table(&r);
                    print!("{text}");
                    summary.push_str(&text);
                }
                rows.extend(eval::photo_rows(&segment, root.as_deref(), &r, &qs, &match_column));
            }
            if let Some(path) = report {
                lookalike::report::write_html(
                    &path,
                    &format!("lookalike eval: {}", index.display()),
                    &summary,
                    &rows,
                )?;
                eprintln!("report written to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Add { index, photos, id, metadata, set, json, backend } => {
            if id.is_some() && photos.len() != 1 {
                anyhow::bail!(lookalike::Error::BadParameter {
                    name: "id",
                    message: "--id names one item: give exactly one photo".into()
                });
            }
            let engine = Engine::open(&index, backend.backend)?;
            let csv =
                metadata.as_deref().map(lookalike::catalog::Metadata::read_csv).transpose()?;
            let mut fixed = std::collections::BTreeMap::new();
            for s in &set {
                let (col, val) = s
                    .split_once('=')
                    .ok_or_else(|| lookalike::Error::BadFilter(format!("--set {s}")))?;
                fixed.insert(col.trim().to_string(), val.trim().to_string());
            }
            let mut items = Vec::with_capacity(photos.len());
            for path in &photos {
                let item_id = match &id {
                    Some(i) => i.clone(),
                    None => path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                };
                let photo = std::fs::read(path)
                    .map_err(|source| lookalike::Error::Io { path: path.clone(), source })?;
                let mut md =
                    csv.as_ref().and_then(|m| m.rows.get(&item_id).cloned()).unwrap_or_default();
                md.extend(fixed.clone());
                items.push(NewItem { id: item_id, photo, metadata: md });
            }
            let report = engine.add_items(items)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "added {}, replaced {}; the index holds {} items ({:.2} s)",
                    report.added.len(),
                    report.replaced.len(),
                    report.total_items,
                    report.seconds
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Remove { index, ids, json } => {
            let engine = Engine::open(&index, BackendKind::Auto)?;
            let report = engine.remove_items(&ids)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "removed {}; the index holds {} items ({:.2} s)",
                    report.removed.len(),
                    report.total_items,
                    report.seconds
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Repartition { index, json } => {
            let report = ingest::repartition(&index)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "partition of {} cells trained; {} items moved ({:.1} s)",
                    report.cells, report.placed, report.seconds
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            index,
            addr,
            catalog,
            max_upload_mb,
            max_inflight,
            admin_token,
            backend,
        } => {
            if admin_token.as_deref().is_some_and(|t| t.trim().len() < 8) {
                anyhow::bail!(lookalike::Error::BadParameter {
                    name: "admin-token",
                    message: "use a token of at least 8 characters".into()
                });
            }
            if max_upload_mb == 0 || max_upload_mb > 1024 {
                anyhow::bail!(lookalike::Error::BadParameter {
                    name: "max-upload-mb",
                    message: format!("{max_upload_mb} is not in 1..=1024")
                });
            }
            let engine = Engine::open(&index, backend.backend)?;
            let opts = lookalike::server::ServeOptions {
                catalog,
                max_upload: max_upload_mb * 1024 * 1024,
                max_inflight,
                admin_token,
            };
            eprintln!(
                "serving {} items ({}, {}) on http://{addr}",
                engine.index().len(),
                engine.info().model.name,
                engine.embedder().backend_name()
            );
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(lookalike::server::serve(engine, addr, opts))
                .with_context(|| format!("serving on {addr}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { what } => {
            bench(what)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { index, json } => {
            let (info, count) = engine::read_info(&index)?;
            let (cells, unplaced) = engine::read_partition(&index)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"model": info.model.name, "count": count, "dimension": info.dim,
                        "columns": info.columns, "format_version": info.format_version,
                        "input_size": info.model.size, "resize": info.model.resize,
                        "colour_weight": info.colour_weight, "cells": cells,
                        "unplaced": unplaced})
                );
            } else {
                println!("index:      {}", index.display());
                println!(
                    "model:      {} ({} px, {:?})",
                    info.model.name, info.model.size, info.model.resize
                );
                println!("items:      {count}");
                println!("dimension:  {}", info.dim);
                if info.colour_weight > 0.0 {
                    println!(
                        "colour:     weight {} ({} bins)",
                        info.colour_weight,
                        lookalike::colour::BINS
                    );
                } else {
                    println!("colour:     none (shape only)");
                }
                if cells > 0 {
                    println!("partition:  {cells} cells, {unplaced} items not placed yet");
                } else {
                    println!("partition:  none (`lookalike index` fits one; search is exact)");
                }
                println!("columns:    {}", info.columns.join(", "));
                println!("format:     v{}", info.format_version);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_hits(
    query: &str,
    hits: &[lookalike::Hit],
    timing: Option<engine::Timing>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let mut obj = serde_json::json!({"query": query, "results": hits});
        if let Some(t) = timing {
            obj["timing_ms"] = serde_json::to_value(t)?;
        }
        println!("{obj}");
        return Ok(());
    }
    println!("{query}");
    if hits.is_empty() {
        println!("  (no results)");
    }
    for (i, h) in hits.iter().enumerate() {
        let name = h.metadata.get("productDisplayName").map(String::as_str).unwrap_or("");
        let kind = h.metadata.get("articleType").map(String::as_str).unwrap_or("");
        println!("  {:>2}. {:<12} {:.4}  {:<16} {}", i + 1, h.id, h.score, kind, name);
    }
    if let Some(t) = timing {
        println!(
            "  ({:.1} ms decode, {:.1} ms embed, {:.2} ms search)",
            t.decode_ms, t.embed_ms, t.search_ms
        );
    }
    Ok(())
}

fn loo_table(r: &eval::LooReport, secs: f64) -> String {
    let mut out = format!("leave-one-out, {} queries, k = {} ({secs:.1} s)\n", r.queries, r.k);
    out.push_str(&format!("  {:<28} {:>10} {:>10}\n", "label", "P@k", "mAP@k"));
    for l in &r.labels {
        out.push_str(&format!(
            "  {:<28} {:>10.3} {:>10.3}\n",
            l.label, l.overall.precision, l.overall.map
        ));
    }
    if let Some(g) = &r.group_by {
        out.push_str(&format!("  by {g} (P@k per label):\n"));
        let groups: std::collections::BTreeSet<&String> =
            r.labels.iter().flat_map(|l| l.groups.keys()).collect();
        for name in groups {
            let cells: Vec<String> = r
                .labels
                .iter()
                .map(|l| {
                    l.groups.get(name).map_or("-".to_string(), |s| format!("{:.3}", s.precision))
                })
                .collect();
            let n = r.labels[0].groups.get(name).map_or(0, |s| s.queries);
            out.push_str(&format!("    {:<26} {:>7} queries  {}\n", name, n, cells.join("  ")));
        }
    }
    out
}

fn photo_table(r: &eval::PhotoReport) -> String {
    let mut out = format!(
        "outside photos, {} queries, k = {}: precision@k {:.3}; no correct result in {:.1}% of queries\n",
        r.queries,
        r.k,
        r.precision,
        100.0 * r.none_correct
    );
    for (label, s) in &r.by_label {
        out.push_str(&format!(
            "    {:<20} {:>5} queries  P@k {:.3}\n",
            label, s.queries, s.precision
        ));
    }
    if !r.failed.is_empty() {
        out.push_str(&format!("  {} photos could not be read:\n", r.failed.len()));
        for (f, e) in r.failed.iter().take(20) {
            out.push_str(&format!("    {f}: {e}\n"));
        }
    }
    out
}

fn bench(what: BenchCommand) -> anyhow::Result<()> {
    use lookalike::bench;
    match what {
        BenchCommand::Stages { catalog, limit, model, batch_size, backend } => {
            let scan = lookalike::catalog::scan(&catalog)?;
            let files: Vec<PathBuf> = scan.photos.into_iter().take(limit).map(|p| p.path).collect();
            let m = lookalike::model::resolve(&model)?;
            let embedder = lookalike::embed::Embedder::new(&m, backend.backend)?;
            let scratch = tempfile_dir()?;
            let r = bench::stages(&files, &embedder, batch_size, &scratch);
            let _ = std::fs::remove_dir_all(&scratch);
            println!("{}", serde_json::to_string(&r?)?);
        }
        BenchCommand::Search { index, queries, k, scales, batch } => {
            let engine = Engine::open(&index, BackendKind::Auto)?;
            let idx = engine.index().compacted();
            let dim = idx.dim();
            anyhow::ensure!(!idx.is_empty(), "the index is empty");
            let q = bench_queries(&idx, queries);
            let mut sizes = vec![idx.len()];
            sizes.extend(scales);
            for size in sizes {
                let before = bench::rss_bytes();
                let matrix = bench::synthesize(idx.matrix(), dim, size, 0.3);
                let r = bench::search_latency(&matrix, dim, &q, k, batch, before);
                println!("{}", serde_json::to_string(&r)?);
            }
        }
        BenchCommand::Ann { index, scale, queries, k, probes, scratch, sources } => {
            let engine = Engine::open(&index, BackendKind::Auto)?;
            let idx = engine.index().compacted();
            let dim = idx.dim();
            anyhow::ensure!(!idx.is_empty(), "the index is empty");
            let base = &idx.matrix()[..sources.unwrap_or(idx.len()).min(idx.len()) * dim];
            let q = bench_queries_from(base, dim, queries);
            let matrix = bench::synthesize(base, dim, scale, 0.3);
            drop(engine);
            let dir = match scratch {
                Some(d) => d,
                None => tempfile_dir()?,
            };
            anyhow::ensure!(
                !dir.join("data.mdb").exists(),
                "{} already holds a store; give an empty folder",
                dir.display()
            );
            let r = bench::ann(matrix, dim, &q, k, &probes, &dir);
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", serde_json::to_string(&r?)?);
        }
        BenchCommand::Add { index, photos, count, single, backend } => {
            let scan = lookalike::catalog::scan(&photos)?;
            let files: Vec<PathBuf> = scan.photos.into_iter().take(count).map(|p| p.path).collect();
            let copy = tempfile_dir()?;
            for f in ["data.mdb", "model.onnx"] {
                std::fs::copy(index.join(f), copy.join(f))
                    .with_context(|| format!("copying {}", index.join(f).display()))?;
            }
            let r = Engine::open(&copy, backend.backend)
                .and_then(|engine| bench::add(&engine, &files, single));
            let _ = std::fs::remove_dir_all(&copy);
            println!("{}", serde_json::to_string(&r?)?);
        }
        BenchCommand::Query { index, images, repeat, backend } => {
            anyhow::ensure!(!images.is_empty(), "give query photos");
            let engine = Engine::open(&index, backend.backend)?;
            let query = Query::default();
            let mut total = Vec::new();
            let (mut dec, mut emb, mut srch) = (Vec::new(), Vec::new(), Vec::new());
            for path in &images {
                let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
                for _ in 0..repeat.max(1) {
                    let t = std::time::Instant::now();
                    let (_, timing) = engine.search_photo(&bytes, &query)?;
                    total.push(t.elapsed().as_secs_f64() * 1e3);
                    dec.push(timing.decode_ms);
                    emb.push(timing.embed_ms);
                    srch.push(timing.search_ms);
                }
            }
            println!(
                "{}",
                serde_json::json!({"items": engine.index().len(), "backend": engine.embedder().backend_name(),
                    "total": bench::Latency::from_ms(total), "decode_preprocess": bench::Latency::from_ms(dec),
                    "embed": bench::Latency::from_ms(emb), "search": bench::Latency::from_ms(srch)})
            );
        }
    }
    Ok(())
}

/// Benchmark queries: catalogue vectors with noise, as a new photo of a known product.
fn bench_queries(idx: &lookalike::index::Segment, queries: usize) -> Vec<f32> {
    bench_queries_from(idx.matrix(), idx.dim(), queries)
}

/// [`bench_queries`] from the rows of a matrix.
fn bench_queries_from(matrix: &[f32], dim: usize, queries: usize) -> Vec<f32> {
    let rows = matrix.len() / dim;
    let step = (rows / queries.max(1)).max(1);
    let picked: Vec<f32> = (0..rows)
        .step_by(step)
        .take(queries)
        .flat_map(|r| matrix[r * dim..(r + 1) * dim].to_vec())
        .collect();
    let n = picked.len() / dim;
    let mut q = lookalike::bench::synthesize(&picked, dim, 2 * n, 0.3);
    q.drain(..n * dim);
    q
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lookalike-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
