//! The `lookalike` command: parses arguments, calls the library, maps errors to exit codes.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Parser;
use lookalike::embed::BackendKind;
use lookalike::engine::NewItem;
use lookalike::engine::{self, Engine, Query};
use lookalike::eval;
use lookalike::index::SearchMode;
use lookalike::ingest::{self, IndexOptions};

mod cli;

use cli::args::{Cli, Command};
use cli::tables::{loo_table, photo_table, print_answer};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOOKALIKE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Output piped into `head` and the like: end quietly when the reader goes away, as
    // Unix tools do, instead of panicking in println! on the closed pipe. Not for the
    // server, whose writes to a client that hung up must fail as errors, not kill it.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve { .. }) {
        // SAFETY: restoring a signal's default action; no other thread runs yet.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
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
            ranking,
            backend,
        } => {
            let engine = Engine::open(&index, backend.backend)?;
            let query = Query {
                crop,
                resize: query_resize,
                min_score,
                collapse,
                ..ranking.query(k, engine.filter(&filters)?)
            };
            if images.is_empty() && similar_to.is_none() {
                anyhow::bail!(lookalike::Error::BadParameter {
                    name: "images",
                    message: "give at least one photo, or --similar-to ID".into()
                });
            }
            if let Some(id) = similar_to {
                let answer = engine.similar_answer(&id, &query)?;
                print_answer(&id, &answer, false, json)?;
            }
            let mut failed = false;
            for path in &images {
                let bytes = std::fs::read(path)
                    .map_err(|source| lookalike::Error::Io { path: path.clone(), source })
                    .with_context(|| format!("query {}", path.display()));
                let result = bytes.and_then(|b| Ok(engine.search_photo(&b, &query)?));
                match result {
                    Ok(answer) => print_answer(&path.display().to_string(), &answer, true, json)?,
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
            ranking,
            backend,
        } => {
            let engine = Engine::open(&index, backend.backend)?;
            let filter = engine.filter(&filters)?;
            let query = ranking.query(k, filter.clone());
            // Catalogue items query as catalogue items do: with the index's default.
            let (catalogue_colour, catalogue_trained) = engine.settings(&query, false)?;
            if holdout && catalogue_trained.is_some_and(|(p, _)| !p.meta().holdout_excluded) {
                anyhow::bail!(lookalike::Error::BadParameter {
                    name: "holdout",
                    message: "the projection was trained on the held-out split too \
                              (train --include-holdout); retrain it without, or measure with \
                              --mix 0"
                        .into()
                });
            }
            let segment = engine.index().compacted();
            let segment =
                if holdout { std::sync::Arc::new(eval::holdout(&segment)) } else { segment };
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
                    let hits = engine.similar_to(segment.id(row), &query)?;
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
                let query_of = |v: &[f32]| engine.query_vector(v, catalogue_colour);
                let query_of =
                    catalogue_colour.is_some().then_some(&query_of as &eval::QueryOf<'_>);
                let through_search =
                    query.mode == SearchMode::Ann || query.expand.is_some_and(|n| n > 0);
                let projected = match catalogue_trained {
                    Some((p, mix)) if !through_search => {
                        Some(eval::ProjectedRows::new(&segment, p, mix)?)
                    }
                    _ => None,
                };
                let shares = engine.category_shares(&query)?;
                let category = shares
                    .filter(|_| !through_search)
                    .map(|s| eval::CategoryRows::new(&engine, &segment, s));
                let r = eval::leave_one_out(
                    &segment,
                    k,
                    &parsed,
                    group.as_deref(),
                    &filter,
                    samples,
                    // Through the search path when it differs from a plain exact scan.
                    through_search.then_some(&ranker as &eval::Ranker<'_>),
                    query_of,
                    eval::Reorder { trained: projected.as_ref(), category: category.as_ref() },
                )?;
                let secs = t.elapsed().as_secs_f64();
                if json {
                    let mut v = serde_json::to_value(&r)?;
                    v["mode"] = "leave-one-out".into();
                    v["split"] = if holdout { "holdout" } else { "all" }.into();
                    v["trained"] = catalogue_trained.map(|(_, mix)| mix).into();
                    v["category"] = shares.map(|s| s.article_type).into();
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
                let mut qs = eval::read_queries(&qcsv, &dir)?;
                if holdout {
                    // The outside photos' test part: never trained on (lookalike::split).
                    qs.retain(|q| {
                        q.file
                            .file_name()
                            .is_some_and(|f| lookalike::split::query_in_test(&f.to_string_lossy()))
                    });
                }
                let query = Query { resize: query_resize, ..query.clone() };
                let r = eval::photo_queries(&engine, qs.clone(), &match_column, &query, samples)?;
                if json {
                    let mut v = serde_json::to_value(&r)?;
                    v["mode"] = "queries".into();
                    v["split"] = if holdout { "test" } else { "all" }.into();
                    v["trained"] = query.trained.into();
                    v["category"] = engine.category_shares(&query)?.map(|s| s.article_type).into();
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
        Command::Train { index, label, network, include_holdout, json } => {
            let cfg = network.config();
            let epochs = cfg.epochs;
            let (_, report) = lookalike::projection::train::train_index(
                &index,
                &label,
                include_holdout,
                &cfg,
                &mut |e| {
                    if !json {
                        eprintln!(
                            "epoch {:>3}/{epochs}: loss {:.4}, accuracy {:.3} ({:.1} s)",
                            e.epoch, e.loss, e.accuracy, e.seconds
                        );
                    }
                },
            )?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "trained on {} items ({} {} values; {} held out, {} without a usable label, \
                     {} sampled out) in {:.1} s; written to {}",
                    report.items,
                    report.classes,
                    report.label,
                    report.held_out,
                    report.unlabelled,
                    report.sampled_out,
                    report.seconds,
                    report.path
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
            cli::bench::run(what)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Info { index, json } => {
            let (info, count) = engine::read_info(&index)?;
            let (cells, unplaced) = engine::read_partition(&index)?;
            let predicts = engine::read_predicts(&index, &info);
            let projection = lookalike::projection::Projection::load(&index);
            let trained = match &projection {
                Ok(Some(p)) => serde_json::json!({"label": p.meta().label,
                    "classes": p.meta().classes.len(), "items": p.meta().items,
                    "layers": p.meta().layers, "holdout_excluded": p.meta().holdout_excluded,
                    "seconds": p.meta().seconds}),
                Ok(None) => serde_json::Value::Null,
                Err(e) => serde_json::json!({"error": e.to_string()}),
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"model": info.model.name, "count": count, "dimension": info.dim,
                        "columns": info.columns, "format_version": info.format_version,
                        "input_size": info.model.size, "resize": info.model.resize,
                        "query_size": info.model.input_size(true),
                        "predicts": predicts.clone().unwrap_or_default(),
                        "colour_weight": info.colour_weight, "cells": cells,
                        "unplaced": unplaced, "trained": trained})
                );
            } else {
                println!("index:      {}", index.display());
                println!(
                    "model:      {} ({} px, {:?}; snapshots at {} px)",
                    info.model.name,
                    info.model.size,
                    info.model.resize,
                    info.model.input_size(true)
                );
                match &predicts {
                    Ok(cols) if !cols.is_empty() => println!("predicts:   {}", cols.join(", ")),
                    Ok(_) => {}
                    Err(e) => println!("predicts:   unusable: {e}"),
                }
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
                match &projection {
                    Ok(Some(p)) => println!(
                        "trained:    projection on {} ({} values, {} items{}); used by default \
                         for all but snapshots",
                        p.meta().label,
                        p.meta().classes.len(),
                        p.meta().items,
                        if p.meta().holdout_excluded { ", held-out split left out" } else { "" }
                    ),
                    Ok(None) => println!("trained:    no (`lookalike train` learns a projection)"),
                    Err(e) => println!("trained:    unusable: {e}"),
                }
                println!("columns:    {}", info.columns.join(", "));
                println!("format:     v{}", info.format_version);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
