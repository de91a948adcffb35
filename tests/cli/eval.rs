//! `lookalike eval` and `lookalike train`: leave-one-out ranks as search does, outside
//! photos scored by their match lists, the held-out split, and a trained projection that
//! learns the labels and refuses bad input.

use super::*;

/// articleType precision@5 of every item's `search --similar-to` (the default query).
fn searched_precision_at_5(engine: &lookalike::Engine) -> f64 {
    let idx = engine.index();
    let q = lookalike::Query { k: 5, ..lookalike::Query::default() };
    let mut sum = 0.0;
    for key in idx.keys() {
        let own = &idx.metadata(key).unwrap()["articleType"];
        let hits = engine.similar_to(idx.id(key).unwrap(), &q).unwrap();
        sum += hits.iter().filter(|h| &h.metadata["articleType"] == own).count() as f64 / 5.0;
    }
    sum / idx.len() as f64
}

/// Leave-one-out ranks every item's query as `search --similar-to` does: the same ids in
/// the same order (both go through one re-ranking pipeline), with the engine's default
/// category ranking and trained projection, as `eval` sets them up.
fn assert_leave_one_out_ranks_as_search(engine: &lookalike::Engine) {
    use lookalike::eval::{CategoryRows, LeaveOneOut, ProjectedRows, QueryOf, Reorder};
    let q = lookalike::Query {
        k: 5,
        mode: lookalike::index::SearchMode::Exact,
        ..lookalike::Query::default()
    };
    let (colour, trained) = engine.settings(&q, false).unwrap();
    let segment = engine.index().compacted();
    let projected = trained.map(|(p, mix)| ProjectedRows::new(&segment, p, mix).unwrap());
    let shares = engine.category_shares(&q).unwrap();
    let category = shares.map(|s| CategoryRows::new(engine, &segment, s));
    let labels =
        lookalike::eval::parse_labels(&["articleType".into()], &engine.info().columns).unwrap();
    let filter = lookalike::Filter::default();
    let query_of = |v: &[f32]| engine.query_vector(v, colour);
    let run = LeaveOneOut {
        samples: segment.len(),
        query_of: colour.map(|_| &query_of as &QueryOf<'_>),
        reorder: Reorder { trained: projected.as_ref(), category: category.as_ref() },
        ..LeaveOneOut::new(5, &labels, &filter)
    };
    let report = lookalike::eval::leave_one_out(&segment, &run).unwrap();
    assert_eq!(report.samples.len(), segment.len());
    for (row, top) in &report.samples {
        let id = segment.id(*row);
        let ranked: Vec<&str> = top.iter().map(|s| segment.id(s.row)).collect();
        let searched: Vec<String> =
            engine.similar_to(id, &q).unwrap().into_iter().map(|h| h.id).collect();
        assert_eq!(ranked, searched, "item {id}");
    }
}

#[test]
fn eval_leave_one_out_agrees_with_searching_each_item() {
    let out = ok(&[
        "eval",
        "--index",
        index_path(),
        "--leave-one-out",
        "--label",
        "articleType",
        "-k",
        "5",
        "--json",
    ]);
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((r["k"].as_u64(), r["queries"].as_u64()), (Some(5), Some(387)));
    // The same figure through the search path: every item's five nearest others.
    let engine = lookalike::Engine::open(
        &lookalike::location::Location::Folder(sample_index().dir.clone()),
        lookalike::embed::BackendKind::Auto,
    )
    .unwrap();
    let idx = engine.index();
    assert!(engine.category_shares(&lookalike::Query::default()).unwrap().is_some());
    assert_leave_one_out_ranks_as_search(&engine);
    let want = searched_precision_at_5(&engine);
    let got = r["precision"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "eval {got} vs search {want}");
    assert!(r["labels"][0]["groups"]["Footwear"]["queries"].as_u64() == Some(25), "{r}");
    // Per articleType: the same per-item precision, grouped by the item's own type.
    let mut by_type: std::collections::BTreeMap<String, (usize, f64, usize)> = Default::default();
    let q = lookalike::Query { k: 5, ..lookalike::Query::default() };
    for key in idx.keys() {
        let own = idx.metadata(key).unwrap()["articleType"].clone();
        let hits = engine.similar_to(idx.id(key).unwrap(), &q).unwrap();
        let right = hits.iter().filter(|h| h.metadata["articleType"] == own).count();
        let e = by_type.entry(own).or_default();
        e.0 += 1;
        e.1 += right as f64 / 5.0;
        e.2 += usize::from(right == 0);
    }
    let classes = r["per_class"].as_array().unwrap();
    assert_eq!(classes.len(), by_type.len(), "{r}");
    let mut last = 0.0;
    for c in classes {
        let (n, sum, none) = by_type[c["class"].as_str().unwrap()];
        assert_eq!(c["queries"].as_u64(), Some(n as u64), "{c}");
        let precision = c["precision"].as_f64().unwrap();
        assert!((precision - sum / n as f64).abs() < 1e-9, "{c}");
        assert!((c["none_correct"].as_f64().unwrap() - none as f64 / n as f64).abs() < 1e-9);
        assert!(precision >= last, "weakest first: {c}");
        last = precision;
    }
    let table = ok(&["eval", "--index", index_path(), "--leave-one-out", "--label", "articleType"]);
    assert!(table.contains("weakest first") && table.contains("nothing right"), "{table}");

    // The held-out split: its items query each other only, none of the rest.
    let held: Vec<String> = idx
        .keys()
        .map(|k| idx.id(k).unwrap().to_string())
        .filter(|id| lookalike::eval::in_holdout(id))
        .collect();
    assert!((40..120).contains(&held.len()), "{} of 387 held out", held.len());
    // Ranked by similarity alone: the predicted category's probabilities are spread over
    // the values of the items ranked, which within the split are not the whole index's.
    let out = ok(&[
        "eval",
        "--index",
        index_path(),
        "--leave-one-out",
        "--holdout",
        "--label",
        "articleType",
        "-k",
        "5",
        "--category",
        "0",
        "--json",
    ]);
    let h: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (h["split"].as_str(), h["queries"].as_u64()),
        (Some("holdout"), Some(held.len() as u64))
    );
    let mut sum = 0.0;
    for id in &held {
        let key = idx.key_of(id).unwrap();
        let own = &idx.metadata(key).unwrap()["articleType"];
        let q = lookalike::Query { k: 5 + 387, category: Some(0.0), ..lookalike::Query::default() };
        let within: Vec<_> = engine
            .similar_to(id, &q)
            .unwrap()
            .into_iter()
            .filter(|h| lookalike::eval::in_holdout(&h.id))
            .take(5)
            .collect();
        sum += within.iter().filter(|h| &h.metadata["articleType"] == own).count() as f64 / 5.0;
    }
    let want = sum / held.len() as f64;
    let got = h["precision"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "holdout eval {got} vs search within it {want}");
    let refused = lookalike(&["eval", "--index", index_path(), "--holdout", "--ann"]);
    assert!(!refused.status.success());
}

#[test]
fn eval_with_outside_photos_scores_the_match_lists() {
    let dir = tempfile::tempdir().unwrap();
    let images = fixture("queries");
    let csv = dir.path().join("queries.csv");
    let rows = [
        ("tshirt.jpg", "T-Shirt", "Tshirts"),
        ("shoes.jpg", "Shoes", "Casual Shoes|Sports Shoes"),
        ("dress.jpg", "Dress", "Dresses"),
        ("hat.jpg", "Hat", "Caps|Hat"),
    ];
    let mut text = String::from("file,label,kids,match_article_types\n");
    for (f, l, m) in rows {
        text.push_str(&format!("{f},{l},False,{m}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let report = dir.path().join("report.html");
    let out = ok(&[
        "eval",
        "--index",
        index_path(),
        "--queries",
        p(&csv),
        "--images",
        p(&images),
        "-k",
        "5",
        "--json",
        "--report",
        p(&report),
    ]);
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((r["k"].as_u64(), r["queries"].as_u64()), (Some(5), Some(4)));
    // Recompute from `search`: share of each photo's top 5 whose type is in its list.
    let mut sum = 0.0;
    for (f, _, m) in rows {
        let s = &search_json(&["-k", "5", p(&images.join(f))])[0];
        let ok_types: Vec<&str> = m.split('|').collect();
        let hits = s["results"].as_array().unwrap();
        sum += hits
            .iter()
            .filter(|h| ok_types.contains(&h["metadata"]["articleType"].as_str().unwrap()))
            .count() as f64
            / 5.0;
    }
    let got = r["precision"].as_f64().unwrap();
    assert!((got - sum / 4.0).abs() < 1e-9, "eval {got} vs search {}", sum / 4.0);
    // One class per label, each its photo's own precision and whether it found nothing.
    let classes = r["per_class"].as_array().unwrap();
    let mut names: Vec<&str> = classes.iter().map(|c| c["class"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Dress", "Hat", "Shoes", "T-Shirt"], "{r}");
    for c in classes {
        assert_eq!(c["queries"].as_u64(), Some(1), "{c}");
        let by_label = r["by_label"][c["class"].as_str().unwrap()]["precision"].as_f64();
        assert_eq!(c["precision"].as_f64(), by_label, "{c}");
        let nothing = if by_label == Some(0.0) { 1.0 } else { 0.0 };
        assert_eq!(c["none_correct"].as_f64(), Some(nothing), "{c}");
    }
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("tshirt.jpg") && html.contains("class=\"r ok\""),
        "report shows queries and marks results"
    );
    assert!(html.contains("per label, weakest first</h2>") && html.contains("<td>Dress</td>"));
    let bad =
        lookalike(&["eval", "--index", index_path(), "--queries", p(&fixture("bad/notes.txt"))]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("match_article_types"));
}

/// A private copy of the sample's lite0 index (the ImageNet model, whose plain features
/// the trained projection is made for), for tests that train on it.
fn sample_index_copy() -> tempfile::TempDir {
    copy_index(sample_lite0_index())
}

fn holdout_precision(index: &str, extra: &[&str]) -> f64 {
    let mut args = vec!["eval", "--index", index, "--holdout", "--label", "articleType", "--json"];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(ok(&args).trim()).unwrap();
    v["precision"].as_f64().unwrap()
}

#[test]
fn train_learns_the_labels_and_trained_search_uses_them() {
    let copy = sample_index_copy();
    let idx = p(copy.path());
    // Nothing to re-order with yet: asking for it is refused, the default is untrained.
    let before = holdout_precision(idx, &[]);
    let refused = lookalike(&["search", "--index", idx, "--similar-to", "1000", "--trained"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("lookalike train"));

    let out = ok(&["train", "--index", idx, "--label", "articleType", "--json"]);
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    let held = report["held_out"].as_u64().unwrap();
    assert_eq!(report["items"].as_u64().unwrap() + held, 387, "{report}");
    assert_eq!(report["classes"], 13);
    assert!(report["final_accuracy"].as_f64().unwrap() > 0.9, "{report}");
    let info: Value = serde_json::from_str(&ok(&["info", "--index", idx, "--json"])).unwrap();
    assert_eq!(info["trained"]["label"], "articleType", "{info}");

    // Measured on items training never saw: the projection is on by default for
    // catalogue queries, and it finds more of the query's article type than without.
    let after = holdout_precision(idx, &[]);
    let off = holdout_precision(idx, &["--mix", "0"]);
    assert!((off - before).abs() < 1e-9, "--mix 0 is the untrained search");
    assert!(after > before + 0.02, "held-out articleType P@5: {before} -> {after}");

    // Leave-one-out through the projection scores what a trained search returns.
    let out = ok(&["eval", "--index", idx, "--label", "articleType", "--json"]);
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    let engine = lookalike::Engine::open(
        &lookalike::location::Location::Folder(copy.path().to_path_buf()),
        lookalike::embed::BackendKind::Auto,
    )
    .unwrap();
    assert!(engine.settings(&lookalike::Query::default(), false).unwrap().1.is_some());
    assert_leave_one_out_ranks_as_search(&engine);
    let want = searched_precision_at_5(&engine);
    let got = r["precision"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "eval {got} vs trained search {want}");
    assert_eq!(r["trained"].as_f64(), Some(f64::from(lookalike::projection::DEFAULT_MIX)));

    // Trained results come ordered by their blended score.
    let trained: Value = serde_json::from_str(
        ok(&["search", "--index", idx, "--similar-to", "1000", "--json", "-k", "5"]).trim(),
    )
    .unwrap();
    let results = trained["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    let scores: Vec<f64> = results.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // Training again with the same seed gives the same file.
    let first = std::fs::read(copy.path().join("projection.bin")).unwrap();
    ok(&["train", "--index", idx, "--json"]);
    let second = std::fs::read(copy.path().join("projection.bin")).unwrap();
    assert_eq!(strip_seconds(&first), strip_seconds(&second));

    // A large index trains on a seeded sample.
    let out = ok(&["train", "--index", idx, "--max-items", "100", "--epochs", "2", "--json"]);
    let sampled: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(sampled["items"], 100);
    assert_eq!(sampled["sampled_out"].as_u64().unwrap() + 100 + held, 387, "{sampled}");

    // A projection that saw the held-out split cannot be measured on it.
    ok(&["train", "--index", idx, "--include-holdout", "--epochs", "2", "--json"]);
    let refused = lookalike(&["eval", "--index", idx, "--holdout", "--json"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("held-out"));
}

/// A projection file's description and parameters, its training time (the only thing
/// that varies from run to run) left out.
fn strip_seconds(bytes: &[u8]) -> (lookalike::projection::ProjectionMeta, Vec<u8>) {
    let p =
        lookalike::projection::Projection::from_bytes(bytes, std::path::Path::new("x")).unwrap();
    let mut meta = p.meta().clone();
    meta.seconds = 0.0;
    let header = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    (meta, bytes[16 + header..bytes.len() - 32].to_vec())
}

#[test]
fn train_refuses_bad_input_and_leaves_the_index_alone() {
    let copy = sample_index_copy();
    let idx = p(copy.path());
    for (args, needle) in [
        (vec!["--label", "colour"], "unknown"),
        (vec!["--epochs", "0"], "epochs"),
        (vec!["--dim", "0"], "dim"),
        (vec!["--learning-rate", "5"], "learning-rate"),
        (vec!["--input-dropout", "1"], "input-dropout"),
        (vec!["--max-items", "1"], "max-items"),
    ] {
        let mut all = vec!["train", "--index", idx];
        all.extend(args);
        let out = lookalike(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{all:?}: {err}");
    }
    assert!(!copy.path().join("projection.bin").exists());
    // A damaged projection: searches that do not ask for it go on; those that do are told.
    let mut damaged = b"LKPROJ\0\0".to_vec();
    damaged.extend_from_slice(&lookalike::projection::FORMAT_VERSION.to_le_bytes());
    damaged.extend_from_slice(&[7u8; 60]);
    std::fs::write(copy.path().join("projection.bin"), damaged).unwrap();
    ok(&["search", "--index", idx, "--similar-to", "1000"]);
    let out = lookalike(&["search", "--index", idx, "--similar-to", "1000", "--trained"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
    let out = lookalike(&["train", "--index", "/nonexistent/index"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn held_out_photo_queries_report_their_own_results() {
    // Outside photos searched with --holdout rank the whole catalogue, not the held-out
    // items: the HTML report must show the results they got.
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    // A name in the outside photos' test part, so that --holdout keeps the query.
    let name = (0..1000)
        .map(|i| format!("shopper-{i}.jpg"))
        .find(|n| lookalike::split::query_in_test(n))
        .unwrap();
    std::fs::copy(fixture("queries/tshirt.jpg"), images.join(&name)).unwrap();
    let csv = dir.path().join("queries.csv");
    std::fs::write(&csv, format!("file,label,match_article_types\n{name},T-Shirt,Tshirts\n"))
        .unwrap();
    let report = dir.path().join("report.html");
    let out = ok(&[
        "eval",
        "--index",
        index_path(),
        "--holdout",
        "--queries",
        p(&csv),
        "--report",
        p(&report),
        "--json",
    ]);
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!((r["mode"].as_str(), r["queries"].as_u64()), (Some("queries"), Some(1)), "{r}");
    let html = std::fs::read_to_string(&report).unwrap();
    let got = &search_json(&["-k", "5", p(&images.join(&name))])[0];
    for id in ids(got) {
        assert!(html.contains(&format!("images/{id}.jpg")), "result {id} missing from the report");
    }
}
