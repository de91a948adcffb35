//! What the commands print for people: result lists and evaluation tables.

use lookalike::eval;

/// One query's results: `timing` for photo queries (not `--similar-to`).
pub fn print_answer(
    query: &str,
    answer: &lookalike::engine::Answer,
    timing: bool,
    json: bool,
) -> anyhow::Result<()> {
    let hits = &answer.hits;
    if json {
        let mut obj = serde_json::json!({"query": query, "results": hits});
        if timing {
            obj["timing_ms"] = serde_json::to_value(answer.timing)?;
        }
        if !answer.predicted.is_empty() {
            obj["predicted"] = serde_json::to_value(&answer.predicted)?;
        }
        if let Some(g) = answer.garment {
            obj["garment_box"] = serde_json::to_value(g)?;
        }
        if timing {
            obj["no_close_match"] = answer.no_close_match.into();
        }
        println!("{obj}");
        return Ok(());
    }
    println!("{query}");
    if !answer.predicted.is_empty() {
        let looks: Vec<String> = answer
            .predicted
            .iter()
            .map(|p| format!("{} {:.0}%", p.value, 100.0 * p.probability))
            .collect();
        println!("  looks like: {}", looks.join(", "));
    }
    if let Some(g) = answer.garment {
        println!("  searched by the garment at x {} y {}, {}x{} px", g.x, g.y, g.w, g.h);
    }
    if hits.is_empty() {
        println!("  (no results)");
    } else if answer.no_close_match {
        println!("  no close match in the catalogue; here are the nearest:");
    }
    for (i, h) in hits.iter().enumerate() {
        let name = h.metadata.get("productDisplayName").map(String::as_str).unwrap_or("");
        let kind = h.metadata.get("articleType").map(String::as_str).unwrap_or("");
        println!("  {:>2}. {:<12} {:.4}  {:<16} {}", i + 1, h.id, h.score, kind, name);
    }
    if timing {
        let t = answer.timing;
        println!(
            "  ({:.1} ms decode, {:.1} ms embed, {:.2} ms search)",
            t.decode_ms, t.embed_ms, t.search_ms
        );
    }
    Ok(())
}

/// Every garment of a photo: with `json` one line, `{"query", "garments": [{"kind",
/// "confidence", "box", "predicted", "results", ...}], "results", ...}` (the top level is
/// the photo's own search, as without `--all-garments`); else a block per garment.
pub fn print_look(query: &str, look: &lookalike::engine::Look, json: bool) -> anyhow::Result<()> {
    if json {
        let garments = look
            .garments
            .iter()
            .map(|g| {
                let mut obj = serde_json::json!({
                    "kind": g.kind,
                    "confidence": g.confidence,
                    "box": g.region,
                    "results": g.answer.hits,
                    "no_close_match": g.answer.no_close_match,
                });
                if !g.answer.predicted.is_empty() {
                    obj["predicted"] = serde_json::to_value(&g.answer.predicted)?;
                }
                if let Some(sq) = g.answer.garment {
                    obj["searched_box"] = serde_json::to_value(sq)?;
                }
                Ok(obj)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let a = &look.answer;
        let mut obj = serde_json::json!({
            "query": query,
            "garments": garments,
            "results": a.hits,
            "no_close_match": a.no_close_match,
            "timing_ms": a.timing,
            "find_ms": look.find_ms,
        });
        if !a.predicted.is_empty() {
            obj["predicted"] = serde_json::to_value(&a.predicted)?;
        }
        if let Some(g) = a.garment {
            obj["garment_box"] = serde_json::to_value(g)?;
        }
        println!("{obj}");
        return Ok(());
    }
    let n = look.garments.len();
    println!("{query}: {n} garment{} found", if n == 1 { "" } else { "s" });
    if n == 0 {
        print_answer("  the photo as a whole", &look.answer, false, false)?;
    }
    for (i, g) in look.garments.iter().enumerate() {
        let r = g.region;
        let label = format!(
            "[{}] {} ({:.0}%) at x {} y {}, {}x{} px",
            i + 1,
            g.kind,
            100.0 * g.confidence,
            r.x,
            r.y,
            r.w,
            r.h
        );
        print_answer(&label, &g.answer, false, false)?;
    }
    Ok(())
}

/// `eval --looks`' figures.
pub fn looks_table(r: &eval::LooksReport) -> String {
    let mut out = format!("shop the look, {} photos, k = {}\n", r.photos, r.k);
    if r.boxed_garments > 0 {
        out += &format!(
            "  garments {}: recall {:.3} (IoU >= {}; kind right too {:.3}), precision@{} {:.3}\n",
            r.boxed_garments,
            r.garment_recall,
            eval::MATCH_IOU,
            r.garment_recall_with_kind,
            r.k,
            r.garment_precision
        );
        for (kind, s) in &r.per_kind {
            out += &format!(
                "    {kind:<10} {:>5}  recall {:.3}  precision@{} {:.3}\n",
                s.garments, s.recall, r.k, s.precision
            );
        }
    }
    if r.unboxed_photos > 0 {
        out += &format!(
            "  photos without boxes {}: a garment's top {} has a match {:.3}; a garment found {:.3}; \
             the photo's own precision@{} {:.3}\n",
            r.unboxed_photos,
            r.k,
            r.found_by_a_garment,
            r.at_least_one_garment,
            r.k,
            r.photo_precision
        );
    }
    out += &format!(
        "  garments found per photo {:.2} ({:.2} matching none); {:.1} ms per photo (p50; mean {:.1}), plain search {:.1} ms\n",
        r.garments_found_per_photo,
        r.extra_per_photo,
        r.look_ms_p50,
        r.look_ms_mean,
        r.plain_ms_p50
    );
    let by: Vec<String> = r
        .look_ms_p50_by_garments
        .iter()
        .map(|(n, (photos, ms))| format!("{n}: {ms:.1} ms ({photos} photos)"))
        .collect();
    out += &format!("  ms per photo by garments found: {}\n", by.join(", "));
    if r.unreadable > 0 {
        out += &format!("  {} photos unreadable\n", r.unreadable);
    }
    out
}

/// Leave-one-out classes shown on the CLI: at least this many queries.
const LOO_CLASS_MIN: usize = 10;

pub fn loo_table(r: &eval::LooReport, secs: f64) -> String {
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
    if let Some(first) = r.labels.first() {
        let title = format!("per articleType (P@k of {})", first.label);
        out.push_str(&class_table(&title, &r.per_class, LOO_CLASS_MIN));
    }
    out
}

/// Per-class figures, weakest first: the CLI's table, of the classes with at least
/// `min_queries` queries (a class of one or two items says little; `--json` has them all).
pub fn class_table(title: &str, classes: &[eval::ClassScores], min_queries: usize) -> String {
    let shown: Vec<&eval::ClassScores> =
        classes.iter().filter(|c| c.queries >= min_queries).collect();
    let mut out = if shown.len() == classes.len() {
        format!("  {title}, weakest first:\n")
    } else {
        format!(
            "  {title}, weakest first ({} classes of {min_queries} queries or more; \
             {} smaller ones in --json):\n",
            shown.len(),
            classes.len() - shown.len()
        )
    };
    out.push_str(&format!(
        "    {:<28} {:>7} {:>8} {:>14}\n",
        "class", "queries", "P@k", "nothing right"
    ));
    for c in shown {
        out.push_str(&format!(
            "    {:<28} {:>7} {:>8.3} {:>13.1}%\n",
            c.class,
            c.queries,
            c.precision,
            100.0 * c.none_correct
        ));
    }
    out
}

/// The same figures as a table of the HTML report.
pub fn class_section(title: &str, classes: &[eval::ClassScores]) -> lookalike::report::Table {
    lookalike::report::Table {
        title: title.to_string(),
        header: ["class", "queries", "P@k", "nothing right"].map(String::from).to_vec(),
        rows: classes
            .iter()
            .map(|c| {
                vec![
                    c.class.clone(),
                    c.queries.to_string(),
                    format!("{:.3}", c.precision),
                    format!("{:.1}%", 100.0 * c.none_correct),
                ]
            })
            .collect(),
    }
}

pub fn photo_table(r: &eval::PhotoReport) -> String {
    let mut out = format!(
        "outside photos, {} queries, k = {}: precision@k {:.3}; no correct result in {:.1}% of queries\n",
        r.queries,
        r.k,
        r.precision,
        100.0 * r.none_correct
    );
    if let (Some(p), Some(n)) = (r.colour_precision, r.colour_queries) {
        out.push_str(&format!("  with the base colour too ({n} queries name one): {p:.3}\n"));
    }
    out.push_str(&class_table("per label", &r.per_class, 1));
    if !r.failed.is_empty() {
        out.push_str(&format!("  {} photos could not be read:\n", r.failed.len()));
        for (f, e) in r.failed.iter().take(20) {
            out.push_str(&format!("    {f}: {e}\n"));
        }
    }
    out
}
