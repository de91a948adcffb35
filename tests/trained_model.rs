//! A model made by `training/` for a shop's own catalogue, used through its manifest alone:
//! `tests/fixtures/trained-model/` holds a tiny one that `training/run.sh --catalog
//! sample-catalog --label subCategory --backbone tiny ...` trained and `training/export.py`
//! wrote (the exact command is in its card), so that CI checks the manifest path without
//! PyTorch. It indexes, searches, predicts its own label column from its heads file and
//! names itself, as a shop's model would.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;

/// The fixture's model name and the column it was trained to tell apart.
const NAME: &str = "trained-tiny";
const LABEL: &str = "subCategory";
/// Photos of each subCategory copied into the test catalogue.
const PER_CLASS: usize = 4;

fn manifest() -> PathBuf {
    fixture(&format!("trained-model/{NAME}.toml"))
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.lines().find(|l| !l.trim().is_empty()).unwrap()).unwrap()
}

/// The first [`PER_CLASS`] sample photos of every subCategory, with their styles.csv rows,
/// copied into `dir`; returns (id, subCategory) pairs.
fn catalogue(dir: &Path) -> Vec<(String, String)> {
    let sample = sample();
    let csv = std::fs::read_to_string(sample.join("styles.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    let col = header.split(',').position(|c| c == LABEL).unwrap();
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut out = format!("{header}\n");
    let mut picked: Vec<(String, String)> = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let (id, class) = (fields[0], fields[col]);
        if picked.iter().filter(|(_, c)| c == class).count() < PER_CLASS {
            let name = format!("images/{id}.jpg");
            std::fs::copy(sample.join(&name), dir.join(&name)).unwrap();
            out.push_str(line);
            out.push('\n');
            picked.push((id.to_string(), class.to_string()));
        }
    }
    std::fs::write(dir.join("styles.csv"), out).unwrap();
    picked
}

/// Index the test catalogue with the fixture's manifest; returns the catalogue's items.
fn index(dir: &Path) -> Vec<(String, String)> {
    // The tract build runs the model without ONNX Runtime.
    if !cfg!(feature = "tract") {
        require_ort();
    }
    let items = catalogue(&dir.join("cat"));
    let report = json(&ok(&[
        "index",
        p(&dir.join("cat")),
        "--index",
        p(&dir.join("idx")),
        "--model",
        p(&manifest()),
        "--backend",
        TEST_BACKEND,
        "--json",
    ]));
    assert_eq!(report["added"].as_u64(), Some(items.len() as u64), "{report}");
    items
}

#[test]
fn a_trained_model_indexes_searches_and_names_itself_through_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let items = index(dir.path());
    let classes: BTreeSet<&str> = items.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(classes.len(), 6, "every subCategory of the sample: {classes:?}");
    let idx = dir.path().join("idx");

    let info = json(&ok(&["info", "--index", p(&idx), "--json"]));
    assert_eq!(info["model"], NAME, "{info}");
    assert_eq!(info["count"].as_u64(), Some(items.len() as u64));
    assert_eq!(info["dimension"].as_u64(), Some(64 + lookalike::colour::BINS as u64));
    assert_eq!((info["input_size"].as_u64(), info["query_size"].as_u64()), (Some(64), Some(64)));
    // The heads file names the column it was trained on, and the index has that column.
    assert_eq!(info["predicts"], serde_json::json!([LABEL]), "{info}");

    // Every catalogue photo finds itself first, by similarity alone.
    for (id, _) in items.iter().step_by(5) {
        let photo = dir.path().join(format!("cat/images/{id}.jpg"));
        let r = json(&ok(&[
            "search",
            "--index",
            p(&idx),
            "--json",
            "-k",
            "3",
            "--query-resize",
            "pad",
            "--category",
            "0",
            p(&photo),
        ]));
        assert_eq!(r["results"][0]["id"], id.as_str(), "{r}");
        assert!(r["results"][0]["score"].as_f64().unwrap() >= 0.999, "{r}");
    }

    // A shopper's snapshot: results come back, and what it looks like is told in the
    // trained label's column, from the model's head and the neighbours together (a model
    // without heads would predict nothing here, or articleType by a vote).
    let query = fixture("queries/shoes.jpg");
    let r = json(&ok(&["search", "--index", p(&idx), "--json", "-k", "5", p(&query)]));
    assert_eq!(r["results"].as_array().unwrap().len(), 5, "{r}");
    let predicted = r["predicted"].as_array().expect("predictions");
    assert_eq!(predicted.len(), 1, "{r}");
    assert_eq!(predicted[0]["column"], LABEL);
    assert_eq!(predicted[0]["source"], "both", "{r}");
    let value = predicted[0]["value"].as_str().unwrap();
    assert!(classes.contains(value), "{value} is no subCategory of the index");
    let p0 = predicted[0]["probability"].as_f64().unwrap();
    assert!(p0 > 1.0 / 6.0 && p0 <= 1.0, "{r}");
}

#[test]
fn the_exported_heads_and_card_match_the_network() {
    let model = lookalike::model::resolve(p(&manifest())).unwrap();
    assert_eq!(model.spec.name, NAME);
    assert_eq!((model.spec.size, model.spec.dim), (64, 64));
    assert_eq!(model.spec.mask.as_deref(), Some("mask"));
    let heads = lookalike::category::Heads::load(&model.heads_path().unwrap()).unwrap();
    assert_eq!(heads.heads().len(), 1, "one head: the catalogue has no baseColour");
    let head = &heads.heads()[0];
    assert_eq!(head.column(), LABEL);

    // The heads file computes the graph's own label_probs from the embedding alone.
    require_ort();
    let backend = if cfg!(feature = "tract") {
        lookalike::embed::BackendKind::Tract
    } else {
        lookalike::embed::BackendKind::Ort
    };
    let embedder = lookalike::embed::Embedder::new(&model, backend).unwrap();
    for photo in ["queries/dress.jpg", "queries/hat.jpg"] {
        let bytes = std::fs::read(fixture(photo)).unwrap();
        let img = lookalike::preprocess::decode(&bytes).unwrap();
        let tensor = lookalike::preprocess::tensor(&img, &model.spec, None).unwrap();
        let names = ["embedding", "label_probs", "mask"];
        let out = embedder.named_outputs(&tensor, model.spec.size, &names).unwrap();
        let (e, want, mask) = (&out[0], &out[1], &out[2]);
        assert!((e.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4, "unit embedding");
        let got = heads.probabilities(head, e);
        assert_eq!(got.len(), want.len());
        let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "{photo}: heads vs graph {worst}");
        // The tiny network's mask has stride 8: 8x8 cells at 64 px, probabilities.
        assert_eq!(mask.len(), 64, "{photo}");
        assert!(mask.iter().all(|m| (0.0..=1.0).contains(m)), "{photo}");
    }

    // The card is written by the export from the same run: it lists the heads' classes
    // and the command that made the model.
    let card = std::fs::read_to_string(manifest().with_extension("card.md")).unwrap();
    let listed: Vec<String> = head.classes().iter().map(|c| format!("`{c}`")).collect();
    let line = format!("* Classes ({}): {}.", listed.len(), listed.join(", "));
    assert!(card.contains(&line), "card lacks '{line}':\n{card}");
    assert!(card.contains("training/run.sh --catalog sample-catalog"), "{card}");
    assert!(card.contains(&format!("--label {LABEL}")), "{card}");
}
