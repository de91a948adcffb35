//! Every on-disk format version ever written keeps a golden index that must still open
//! and answer. v1: six sample photos, the tiny test model (64-d), written by lookalike 0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use lookalike::embed::BackendKind;
use lookalike::{Engine, Query};

fn open_copy(version: u32) -> (tempfile::TempDir, Engine) {
    let src = fixture(&format!("golden-index-v{version}"));
    let dir = tempfile::tempdir().unwrap();
    for f in ["data.mdb", "model.onnx"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let engine = Engine::open(dir.path(), BackendKind::Tract).unwrap();
    (dir, engine)
}

#[test]
fn golden_index_v1_opens_and_answers() {
    let (_dir, engine) = open_copy(1);
    let info = engine.info();
    assert_eq!(info.format_version, 1);
    assert_eq!((info.dim, info.model.name.as_str()), (64, "tiny-test"));
    assert_eq!(
        info.columns,
        vec!["gender", "masterCategory", "subCategory", "articleType", "productDisplayName"]
    );
    assert_eq!(engine.index().len(), 6);
    let hits = engine.similar_to("1000", &Query::default()).unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, vec!["1180", "1087", "1299", "1030", "1001"]);
    assert_eq!(hits[0].metadata["articleType"], "Dresses");
    // The stored model still embeds photos into the stored space.
    let bytes = std::fs::read(sample().join("images/1087.jpg")).unwrap();
    let q = Query { k: 1, resize: lookalike::preprocess::QueryResize::Pad, ..Query::default() };
    let (hits, _) = engine.search_photo(&bytes, &q).unwrap();
    assert_eq!(hits[0].id, "1087");
    assert!(hits[0].score > 0.999);
}
