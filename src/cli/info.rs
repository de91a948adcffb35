//! `lookalike info`: an index's model, size, partition and projection, as text or JSON.

use std::process::ExitCode;

use lookalike::engine;

use super::args::InfoArgs;

pub fn run(a: InfoArgs) -> anyhow::Result<ExitCode> {
    let d = engine::describe(&a.index)?;
    let info = &d.info;
    let trained = match &d.projection {
        Ok(Some(p)) => serde_json::json!({"label": p.meta().label,
            "classes": p.meta().classes.len(), "items": p.meta().items,
            "layers": p.meta().layers, "holdout_excluded": p.meta().holdout_excluded,
            "seconds": p.meta().seconds}),
        Ok(None) => serde_json::Value::Null,
        Err(e) => serde_json::json!({"error": e.to_string()}),
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({"model": info.model.name, "count": d.count,
                "items_in_memory": d.items_in_memory, "dimension": info.dim,
                "columns": info.columns, "catalog": info.catalog,
                "format_version": info.format_version,
                "input_size": info.model.size, "resize": info.model.resize,
                "query_size": info.model.input_size(true),
                "predicts": d.predicts.clone().unwrap_or_default(),
                "colour_weight": info.colour_weight, "cells": d.cells,
                "unplaced": d.unplaced, "trained": trained})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("index:      {}", a.index);
    if let Some(catalog) = &info.catalog {
        println!("catalogue:  {catalog}");
    }
    println!(
        "model:      {} ({} px, {:?}; snapshots at {} px)",
        info.model.name,
        info.model.size,
        info.model.resize,
        info.model.input_size(true)
    );
    match &d.predicts {
        Ok(cols) if !cols.is_empty() => println!("predicts:   {}", cols.join(", ")),
        Ok(_) => {}
        Err(e) => println!("predicts:   unusable: {e}"),
    }
    println!("items:      {} ({} held in memory by `serve`)", d.count, d.items_in_memory);
    println!("dimension:  {}", info.dim);
    if info.colour_weight > 0.0 {
        println!("colour:     weight {} ({} bins)", info.colour_weight, lookalike::colour::BINS);
    } else {
        println!("colour:     none (shape only)");
    }
    if d.cells > 0 {
        println!("partition:  {} cells, {} items not placed yet", d.cells, d.unplaced);
    } else {
        println!("partition:  none (`lookalike index` fits one; search is exact)");
    }
    match &d.projection {
        Ok(Some(p)) => println!(
            "trained:    projection on {} ({} values, {} items{}); used by default for all \
             but snapshots",
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
    Ok(ExitCode::SUCCESS)
}
