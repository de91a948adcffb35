//! `lookalike eval`: the flags become an evaluation spec; the figures are printed as tables
//! or JSON, and the sample queries written as an HTML report.

use std::process::ExitCode;

use lookalike::eval::{self, Spec};

use super::args::EvalArgs;
use super::tables::{class_section, loo_table, photo_table};

pub fn run(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let engine = a.backend.open(&a.index, Default::default())?;
    if a.leave_one_out && matches!(a.index, lookalike::location::Location::Milvus(_)) {
        // Paged leave-one-out is not built: say what it holds (README, "eval").
        eprintln!(
            "leave-one-out holds the whole collection in memory, as `serve` does: {} items \
             (measured: 146 MB at 8,000 items; about 8 kB an item with the model, so ~8 GB \
             at 1M)",
            engine.index().len()
        );
    }
    let spec = Spec {
        leave_one_out: a.leave_one_out,
        labels: a.labels,
        group_by: a.group_by,
        queries: a.queries,
        images: a.images,
        match_column: a.match_column,
        query: a.ranking.query(a.k, engine.filter(&a.filters)?),
        query_resize: a.query_resize,
        holdout: a.holdout,
        samples: if a.report.is_some() { a.report_samples } else { 0 },
        looks: a.looks,
    };
    let result = eval::run(&engine, &spec)?;
    let mut summary = String::new();
    let mut tables = Vec::new();
    if let Some(c) = &result.catalogue {
        if let Some(first) = c.report.labels.first() {
            let title = format!("Leave-one-out per articleType ({}), weakest first", first.label);
            tables.push(class_section(&title, &c.report.per_class));
        }
        if a.json {
            let mut v = serde_json::to_value(&c.report)?;
            v["mode"] = "leave-one-out".into();
            v["split"] = if a.holdout { "holdout" } else { "all" }.into();
            v["trained"] = c.trained.into();
            v["category"] = c.category.into();
            v["seconds"] = c.seconds.into();
            println!("{v}");
        } else {
            let mut text = loo_table(&c.report, c.seconds);
            if a.holdout {
                text = format!(
                    "held-out split ({}% of items by id hash): {text}",
                    eval::HOLDOUT_PERCENT
                );
            }
            print!("{text}");
            summary.push_str(&text);
        }
    }
    if let Some(p) = &result.photos {
        tables.push(class_section("Outside photos per label, weakest first", &p.report.per_class));
        if a.json {
            let mut v = serde_json::to_value(&p.report)?;
            v["mode"] = "queries".into();
            v["split"] = if a.holdout { "test" } else { "all" }.into();
            v["trained"] = p.trained.into();
            v["category"] = p.category.into();
            println!("{v}");
        } else {
            let text = photo_table(&p.report);
            print!("{text}");
            summary.push_str(&text);
        }
    }
    if let Some(l) = &result.looks {
        if a.json {
            let mut v = serde_json::to_value(l)?;
            v["mode"] = "looks".into();
            println!("{v}");
        } else {
            let text = super::tables::looks_table(l);
            print!("{text}");
            summary.push_str(&text);
        }
    }
    if let Some(path) = a.report {
        lookalike::report::write_html(
            &path,
            &format!("lookalike eval: {}", a.index),
            &summary,
            &tables,
            &result.rows,
        )?;
        eprintln!("report written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
