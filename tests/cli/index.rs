//! `lookalike index` beyond the first run: incremental re-indexing, a CSV or model it
//! cannot use (the index left alone), manifests, a killed run resumed, links that leave
//! the catalogue, a styles CSV without ids.

use super::*;

#[test]
fn reindexing_is_incremental() {
    require_ort();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    let ids = small_catalog(&cat, 6);
    let idx = dir.path().join("idx");
    let first: Value =
        serde_json::from_str(&ok(&["index", p(&cat), "--index", p(&idx), "--json"])).unwrap();
    assert_eq!((first["added"].as_u64(), first["total_items"].as_u64()), (Some(6), Some(6)));

    let again: Value =
        serde_json::from_str(&ok(&["index", p(&cat), "--index", p(&idx), "--json"])).unwrap();
    assert_eq!(again["unchanged"], 6);
    assert_eq!(
        again["added"].as_u64().unwrap() + again["reembedded"].as_u64().unwrap(),
        0,
        "nothing embedded twice"
    );

    // Add one, change one photo's content, delete one, change one's metadata.
    std::fs::copy(sample().join("images/1300.jpg"), cat.join("images/new1.jpg")).unwrap();
    std::fs::copy(sample().join("images/1301.jpg"), cat.join(format!("images/{}.jpg", ids[1])))
        .unwrap();
    std::fs::remove_file(cat.join(format!("images/{}.jpg", ids[2]))).unwrap();
    let csv = std::fs::read_to_string(cat.join("styles.csv")).unwrap();
    let csv = csv.replacen(&format!("{},Unisex", ids[3]), &format!("{},Kids", ids[3]), 1);
    std::fs::write(cat.join("styles.csv"), csv).unwrap();

    let third: Value =
        serde_json::from_str(&ok(&["index", p(&cat), "--index", p(&idx), "--json"])).unwrap();
    assert_eq!(third["added"], 1, "{third}");
    assert_eq!(third["reembedded"], 1, "{third}");
    assert_eq!(third["removed"], 1, "{third}");
    assert_eq!(third["metadata_updated"], 1, "{third}");
    assert_eq!(third["unchanged"], 3, "{third}");
    assert_eq!(third["total_items"], 6);
    assert_eq!(third["photos_without_metadata"], 1, "new1 has no CSV row");
    assert_eq!(third["metadata_rows_without_photo"], 1, "the deleted photo's row");
    // The changed photo now finds the photo it was replaced with.
    let r = &json_lines(&ok(&[
        "search",
        "--index",
        p(&idx),
        "--json",
        "-k",
        "1",
        p(&sample().join("images/1301.jpg")),
    ]))[0];
    assert_eq!(r["results"][0]["id"], ids[1].as_str());
    let r = &json_lines(&ok(&[
        "search",
        "--index",
        p(&idx),
        "--json",
        "--similar-to",
        &ids[0],
        "-k",
        "10",
    ]))[0];
    assert!(
        r["results"].as_array().unwrap().iter().all(|h| h["id"] != ids[2].as_str()),
        "deleted item is gone"
    );
    let kid = r["results"].as_array().unwrap().iter().find(|h| h["id"] == ids[3].as_str()).unwrap();
    assert_eq!(kid["metadata"]["gender"], "Kids");
}

#[test]
fn unusable_csv_is_an_error_and_leaves_the_index_alone() {
    require_ort();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    small_catalog(&cat, 3);
    let idx = dir.path().join("idx");
    ok(&["index", p(&cat), "--index", p(&idx)]);
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "sku,gender\n1,Men\n").unwrap();
    let out = lookalike(&["index", p(&cat), "--index", p(&idx), "--metadata", p(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no 'id' column") && err.contains("sku, gender"), "{err}");
    let info: Value = serde_json::from_str(&ok(&["info", "--index", p(&idx), "--json"])).unwrap();
    assert_eq!(info["count"], 3);
    let out = lookalike(&[
        "index",
        p(&cat),
        "--index",
        p(&idx),
        "--metadata",
        p(&dir.path().join("missing.csv")),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.csv"));
    let out = lookalike(&["index", p(&dir.path().join("no-such-folder")), "--index", p(&idx)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn another_model_on_an_existing_index_is_refused() {
    require_ort();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    small_catalog(&cat, 2);
    let idx = dir.path().join("idx");
    ok(&["index", p(&cat), "--index", p(&idx)]);
    let out = lookalike(&["index", p(&cat), "--index", p(&idx), "--model", "lite2"]);
    assert_eq!(out.status.code(), Some(2));
    let built = format!("built with model {}", lookalike::model::FASHION);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&built));
    // Asking for the model it has is fine.
    ok(&["index", p(&cat), "--index", p(&idx), "--model", "fashion"]);
    // An index of an earlier fashion model (r1, r2) keeps it: re-indexed with no --model,
    // and refused the new one (r1's name is a prefix of the others': the space ends it).
    for (model, name, said) in [
        ("fashion-1", "lookalike-fashion", "built with model lookalike-fashion "),
        ("fashion-2", "lookalike-fashion-2", "built with model lookalike-fashion-2"),
    ] {
        let old = dir.path().join(model);
        ok(&["index", p(&cat), "--index", p(&old), "--model", model]);
        ok(&["index", p(&cat), "--index", p(&old)]);
        let info: serde_json::Value =
            serde_json::from_str(&ok(&["info", "--index", p(&old), "--json"])).unwrap();
        assert_eq!(info["model"], name);
        let out = lookalike(&["index", p(&cat), "--index", p(&old), "--model", "fashion"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(said));
    }
}

#[test]
fn a_manifest_model_indexes_and_searches() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    small_catalog(&cat, 5);
    let idx = dir.path().join("idx");
    let manifest = fixture("tiny-model/manifest.toml");
    ok(&["index", p(&cat), "--index", p(&idx), "--model", p(&manifest), "--backend", TEST_BACKEND]);
    let info: Value = serde_json::from_str(&ok(&["info", "--index", p(&idx), "--json"])).unwrap();
    let dim = 64 + lookalike::colour::BINS as u64;
    assert_eq!(
        (info["dimension"].as_u64(), info["model"].as_str()),
        (Some(dim), Some("tiny-test"))
    );
    let r = &json_lines(&ok(&[
        "search",
        "--index",
        p(&idx),
        "--json",
        "-k",
        "1",
        p(&sample().join("images/1002.jpg")),
    ]))[0];
    assert_eq!(r["results"][0]["id"], "1002");
}

#[test]
fn a_killed_indexing_run_leaves_an_index_that_opens_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("idx");
    // Small batches (each its own commit) make the run slow enough to kill in the middle.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .args([
            "index",
            p(&sample()),
            "--index",
            p(&idx),
            "--backend",
            TEST_BACKEND,
            "--batch-size",
            "4",
            "--json",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut committed = 0;
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let out = lookalike(&["info", "--index", p(&idx), "--json"]);
        if out.status.success() {
            let info: Value = serde_json::from_slice(&out.stdout).unwrap();
            committed = info["count"].as_u64().unwrap();
            if committed >= 12 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let info: Value = serde_json::from_str(&ok(&["info", "--index", p(&idx), "--json"])).unwrap();
    let kept = info["count"].as_u64().unwrap();
    assert!(kept >= committed && kept > 0, "committed items survive: {kept} < {committed}");
    assert!(kept < 387, "the run was really interrupted ({kept})");
    let report: Value = serde_json::from_str(&ok(&[
        "index",
        p(&sample()),
        "--index",
        p(&idx),
        "--backend",
        TEST_BACKEND,
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["total_items"], 387);
    assert_eq!(
        report["unchanged"].as_u64(),
        Some(kept),
        "resumed without embedding again: {report}"
    );
}

#[cfg(unix)]
#[test]
fn links_are_followed_only_inside_the_catalogue() {
    require_ort();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    let ids = small_catalog(&cat, 3);
    let link = |target: &std::path::Path, at: &str| {
        std::os::unix::fs::symlink(target, cat.join(at)).unwrap();
    };
    // Inside: another name for a photo of the catalogue, and a folder of it.
    link(&cat.join(format!("images/{}.jpg", ids[0])), "images/again.jpg");
    link(&cat.join("images"), "mirror");
    // Outside, nowhere, in a loop.
    let outside = dir.path().join("elsewhere.jpg");
    std::fs::copy(sample().join("images/1100.jpg"), &outside).unwrap();
    link(&outside, "images/outside.jpg");
    link(std::path::Path::new("/nonexistent.jpg"), "images/dangling.jpg");
    std::fs::create_dir_all(cat.join("sub")).unwrap();
    link(std::path::Path::new(".."), "sub/up");
    let idx = dir.path().join("idx");
    let report: Value =
        serde_json::from_str(&ok(&["index", p(&cat), "--index", p(&idx), "--json"])).unwrap();
    let skipped = skipped(&report);
    let reason =
        |f: &str| skipped.iter().find(|(p, _)| p == f).map(|(_, r)| r.clone()).unwrap_or_default();
    assert!(reason("images/outside.jpg").contains("outside the catalogue"), "{skipped:?}");
    assert!(reason("images/dangling.jpg").contains("dangling"), "{skipped:?}");
    assert!(reason("sub/up").contains("loop"), "{skipped:?}");
    // The photos themselves and the inside link are indexed; nothing from outside is.
    let info: Value = serde_json::from_str(&ok(&["info", "--index", p(&idx), "--json"])).unwrap();
    assert_eq!(info["count"], 4, "{report}");
    let out = lookalike(&["search", "--index", p(&idx), "--similar-to", "outside"]);
    assert_eq!(out.status.code(), Some(2), "the outside photo must not be indexed");
}

#[test]
fn a_styles_csv_without_ids_is_reported_and_the_photos_still_indexed() {
    require_ort();
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    small_catalog(&cat, 3);
    let idx = dir.path().join("idx");
    ok(&["index", p(&cat), "--index", p(&idx)]);
    let before = &search_json_on(&idx, &["--similar-to", "1000", "-k", "2"])[0];
    // The table beside the photos loses its id column: reported, not fatal, and the
    // items keep the metadata they had.
    std::fs::write(cat.join("styles.csv"), "sku,gender\n1,Men\n").unwrap();
    let report: Value =
        serde_json::from_str(&ok(&["index", p(&cat), "--index", p(&idx), "--json"])).unwrap();
    let why = report["metadata_unused"].as_str().unwrap_or_default();
    assert!(why.contains("no 'id' column") && why.contains("sku, gender"), "{report}");
    assert_eq!(report["total_items"], 3);
    let after = &search_json_on(&idx, &["--similar-to", "1000", "-k", "2"])[0];
    assert_eq!(before["results"], after["results"], "metadata kept");
    assert!(before["results"][0]["metadata"].as_object().is_some_and(|m| !m.is_empty()));
    // A new index from such a folder has its photos, without metadata.
    let fresh = dir.path().join("fresh");
    let report: Value =
        serde_json::from_str(&ok(&["index", p(&cat), "--index", p(&fresh), "--json"])).unwrap();
    assert_eq!(
        (report["total_items"].as_u64(), report["metadata_unused"].is_string()),
        (Some(3), true)
    );
}

fn search_json_on(idx: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["search", "--index", p(idx), "--json"];
    all.extend_from_slice(args);
    json_lines(&ok(&all))
}
