//! Result quality controls end to end: the colour descriptor (real sample photos
//! recoloured red and blue, the garment only, the white background kept; indexed with and
//! without colour; the per-query colour weight; refusals), the score floor,
//! near-duplicate collapsing and query expansion.

use std::path::Path;

use crate::common::*;
use serde_json::Value;

/// Sample photos of different garments (ids of `sample-catalog`).
const GARMENTS: [&str; 6] = ["1000", "1040", "1080", "1120", "1160", "1200"];

/// Recolour the garment pixels (not the near-white background) of a photo.
fn tint(src: &Path, dst: &Path, gain: [f32; 3]) {
    let mut img = image::open(src).unwrap().to_rgb8();
    for px in img.pixels_mut() {
        if px.0.iter().all(|&c| c >= 235) {
            continue;
        }
        let grey = (f32::from(px.0[0]) + f32::from(px.0[1]) + f32::from(px.0[2])) / 3.0;
        for (c, g) in px.0.iter_mut().zip(gain) {
            *c = (grey * g).clamp(0.0, 255.0) as u8;
        }
    }
    img.save(dst).unwrap();
}

/// A catalogue of every garment in red and in blue: ids `<garment>-red`, `<garment>-blue`.
fn tinted_catalog(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for g in GARMENTS {
        let src = sample().join(format!("images/{g}.jpg"));
        tint(&src, &dir.join(format!("{g}-red.png")), [1.6, 0.35, 0.3]);
        tint(&src, &dir.join(format!("{g}-blue.png")), [0.3, 0.5, 1.6]);
    }
}

fn similar(index: &Path, id: &str, extra: &[&str]) -> Vec<(String, f64)> {
    let mut args = vec!["search", "--index", p(index), "--similar-to", id, "-k", "11", "--json"];
    args.extend_from_slice(extra);
    let v: Vec<Value> = json_lines(&ok(&args));
    v[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["score"].as_f64().unwrap()))
        .collect()
}

#[test]
fn colour_weight_orders_by_colour_and_zero_gives_shape_only() {
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    tinted_catalog(&cat);
    let with = tmp.path().join("with");
    let without = tmp.path().join("without");
    let r: Value =
        serde_json::from_str(&ok(&["index", p(&cat), "--index", p(&with), "--json"])).unwrap();
    assert_eq!(r["added"], 12);
    ok(&["index", p(&cat), "--index", p(&without), "--colour-weight", "0", "--json"]);
    let info: Value = serde_json::from_str(&ok(&["info", "--index", p(&with), "--json"])).unwrap();
    assert_eq!(info["dimension"], 256 + lookalike::colour::BINS, "{info}");

    for g in GARMENTS {
        let query = format!("{g}-red");
        // Colour dominating: the other five red garments come before any blue one.
        let strong = similar(&with, &query, &["--colour", "4"]);
        let reds = strong.iter().take(5).filter(|(id, _)| id.ends_with("-red")).count();
        assert_eq!(reds, 5, "{query} with --colour 4: {strong:?}");
        // Scores stay cosines: self excluded, all in [-1, 1] and descending.
        assert!(strong.windows(2).all(|w| w[0].1 >= w[1].1 - 1e-6));
        assert!(strong.iter().all(|(_, s)| (-1.0..=1.0 + 1e-6).contains(s)));

        // Weight 0 on the colour index ranks exactly as the index without colour.
        let shape = similar(&with, &query, &["--colour", "0"]);
        let plain = similar(&without, &query, &[]);
        let ids = |v: &[(String, f64)]| v.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&shape), ids(&plain), "{query}");
        for ((_, a), (_, b)) in shape.iter().zip(&plain) {
            assert!((a - b).abs() < 1e-4, "{query}: {a} vs {b}");
        }
    }
    // With shape only, a garment's other colour is (nearly always) its nearest neighbour;
    // with colour counting as much as shape it is not first any more for most garments.
    let twin_first = |extra: &[&str]| {
        GARMENTS
            .iter()
            .filter(|g| similar(&with, &format!("{g}-red"), extra)[0].0 == format!("{g}-blue"))
            .count()
    };
    let (shape_twins, colour_twins) =
        (twin_first(&["--colour", "0"]), twin_first(&["--colour", "1"]));
    assert!(shape_twins >= 4, "shape only: {shape_twins} of 6 twins first");
    assert!(colour_twins < shape_twins, "colour: {colour_twins}, shape: {shape_twins}");
}

#[test]
fn colour_requests_an_index_cannot_answer_are_refused() {
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    small_catalog(&cat, 4);
    let idx = tmp.path().join("idx");
    ok(&["index", p(&cat), "--index", p(&idx), "--colour-weight", "0", "--json"]);
    let id = "1000";
    let out = lookalike(&["search", "--index", p(&idx), "--similar-to", id, "--colour", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour"), "{out:?}");
    // Weight 0 is what the index does anyway.
    ok(&["search", "--index", p(&idx), "--similar-to", id, "--colour", "0"]);
    // Out of range, and a changed weight on an existing index.
    let out = lookalike(&["search", "--index", p(&idx), "--similar-to", id, "--colour", "-1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let before = std::fs::read(idx.join("data.mdb")).unwrap();
    let out = lookalike(&["index", p(&cat), "--index", p(&idx), "--colour-weight", "0.5"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("colour weight"), "{out:?}");
    assert_eq!(std::fs::read(idx.join("data.mdb")).unwrap(), before, "the index changed");
    let out =
        lookalike(&["index", p(&cat), "--index", p(&tmp.path().join("n")), "--colour-weight", "9"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn score_floor_and_near_duplicate_collapsing() {
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let ids = small_catalog(&cat, 8);
    // The same photo twice more under other ids: exact duplicates of ids[0].
    for dup in ["dup-a", "dup-b"] {
        std::fs::copy(
            cat.join(format!("images/{}.jpg", ids[0])),
            cat.join(format!("images/{dup}.jpg")),
        )
        .unwrap();
    }
    let idx = tmp.path().join("idx");
    ok(&["index", p(&cat), "--index", p(&idx), "--json"]);
    let photo = cat.join(format!("images/{}.jpg", ids[0]));
    let search = |extra: &[&str]| -> Vec<(String, f64)> {
        // Squared as the catalogue is (padded), and by similarity alone, so that a copy
        // scores exactly 1.
        let mut args = vec![
            "search",
            "--index",
            p(&idx),
            p(&photo),
            "-k",
            "4",
            "--json",
            "--query-resize",
            "pad",
            "--category",
            "0",
        ];
        args.extend_from_slice(extra);
        json_lines(&ok(&args))[0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_string(), r["score"].as_f64().unwrap()))
            .collect()
    };
    let plain = search(&[]);
    assert_eq!(plain.len(), 4);
    let mut top3: Vec<&str> = plain[..3].iter().map(|(i, _)| i.as_str()).collect();
    top3.sort();
    let mut want = vec![ids[0].as_str(), "dup-a", "dup-b"];
    want.sort();
    assert_eq!(top3, want, "{plain:?}");

    // Collapsed: one of the three copies, and still 4 results (the next ones moved up).
    let collapsed = search(&["--collapse", "0.99"]);
    assert_eq!(collapsed.len(), 4, "{collapsed:?}");
    let copies = collapsed.iter().filter(|(i, _)| want.contains(&i.as_str())).count();
    assert_eq!(copies, 1, "{collapsed:?}");
    assert_eq!(collapsed[1], plain[3], "the next result moves up");

    // Score floor: only the copies score 1.
    let floor = search(&["--min-score", "0.999"]);
    assert_eq!(floor.len(), 3, "{floor:?}");
    assert!(floor.iter().all(|(_, s)| *s >= 0.999));

    // Query expansion: folding in the best two results, here exact copies of the query,
    // leaves the query (and so the ranking and the scores) as it was.
    let expanded = search(&["--expand", "2"]);
    assert_eq!(expanded.len(), 4);
    for (a, b) in expanded.iter().zip(&plain) {
        assert!((a.1 - b.1).abs() < 1e-5, "{expanded:?} vs {plain:?}");
    }
    assert_eq!(expanded[3].0, plain[3].0);
    assert_eq!(search(&["--expand", "0"]), plain);
    // Folding in the fourth result too moves the query towards it: it scores higher.
    let deeper = search(&["--expand", "4"]);
    let fourth = deeper.iter().find(|(i, _)| *i == plain[3].0).expect("still among the top 4");
    assert!(fourth.1 > plain[3].1 + 1e-4, "{deeper:?} vs {plain:?}");

    for bad in [["--min-score", "1.5"], ["--collapse", "2"], ["--expand", "21"]] {
        let mut args = vec!["search", "--index", p(&idx), p(&photo)];
        args.extend_from_slice(&bad);
        let out = lookalike(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(&bad[0][2..]), "{out:?}");
    }
}
