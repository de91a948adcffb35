//! Every on-disk format version ever written keeps a golden index that must still open
//! and answer. v1: six sample photos, the tiny test model (64-d), written by lookalike 0.1.
//! v2 (`tools/make_golden_index.sh 2`): the same six, then a hat photo added with `add` and
//! item 1001 removed; items carry keys and the HNSW graph is in the file (lookalike no
//! longer reads it: a v2 index is searched exactly). v3 (`tools/make_golden_index.sh 3`):
//! the same steps; the partition (2 cells for 6 items, colour weight 0.3) is in the file
//! and every item, the added one too, has its cell.

use crate::common::*;
use lookalike::{Engine, Query};

fn open_copy(version: u32) -> (tempfile::TempDir, Engine) {
    let src = fixture(&format!("golden-index-v{version}"));
    let dir = tempfile::tempdir().unwrap();
    for f in ["data.mdb", "model.onnx"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    if src.join("photos").is_dir() {
        std::fs::create_dir(dir.path().join("photos")).unwrap();
        for e in std::fs::read_dir(src.join("photos")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.path().join("photos").join(e.file_name())).unwrap();
        }
    }
    let engine = Engine::open(
        &lookalike::location::Location::Folder(dir.path().to_path_buf()),
        test_backend(),
    )
    .unwrap();
    (dir, engine)
}

/// Item 1000's five nearest, exactly and through the planner's approximate path.
fn assert_similar_to_1000(engine: &Engine, want: &[&str]) {
    for mode in [lookalike::index::SearchMode::Exact, lookalike::index::SearchMode::Ann] {
        let q = Query { mode, ..Query::default() };
        let hits = engine.similar_to("1000", &q).unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, want, "{mode:?}");
    }
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
    let hits = engine.search_photo(&bytes, &q).unwrap().hits;
    assert_eq!(hits[0].id, "1087");
    assert!(hits[0].score > 0.999);
}

#[test]
fn golden_index_v2_opens_and_answers_and_takes_writes() {
    let (dir, engine) = open_copy(2);
    let info = engine.info();
    assert_eq!((info.format_version, info.dim), (2, 64));
    assert_eq!(engine.index().len(), 6);
    assert!(engine.index().key_of("1001").is_none(), "removed before the fixture was written");
    let want = vec!["1180", "added-hat", "1087", "1299", "1030"];
    assert_similar_to_1000(&engine, &want);
    // The added item's photo lives in the index folder, and its metadata came with it.
    let key = engine.index().key_of("added-hat").unwrap();
    let record = engine.index().record(key).unwrap().clone();
    assert!(record.added && dir.path().join(&record.path).is_file());
    assert_eq!(record.metadata["articleType"], "Caps");
    let bytes = std::fs::read(fixture("queries/hat.jpg")).unwrap();
    let q = Query { k: 1, resize: lookalike::preprocess::QueryResize::Pad, ..Query::default() };
    let hits = engine.search_photo(&bytes, &q).unwrap().hits;
    assert_eq!(hits[0].id, "added-hat");
    assert!(hits[0].score > 0.999);
    // And it takes new writes: keys continue after the stored ones.
    let report = engine
        .add_items(vec![lookalike::engine::NewItem {
            id: "again".into(),
            photo: std::fs::read(sample().join("images/1001.jpg")).unwrap(),
            metadata: Default::default(),
        }])
        .unwrap();
    assert_eq!((report.added.len(), report.total_items), (1, 7));
}

#[test]
fn golden_index_v3_opens_and_answers_exactly_and_through_its_partition() {
    let (_dir, engine) = open_copy(3);
    let info = engine.info();
    assert_eq!((info.format_version, info.dim, info.colour_weight), (3, 64 + 78, 0.3));
    let index = engine.index();
    assert_eq!(index.len(), 6);
    let cells = index.cells().expect("a v3 index keeps its partition").clone();
    assert_eq!((cells.partition().cells(), cells.unplaced()), (2, 0));
    let want = vec!["1180", "added-hat", "1087", "1299", "1030"];
    assert_similar_to_1000(&engine, &want);
    // Through the stored cells themselves (both: the planner would rather scan exactly).
    let v = index.vector(index.key_of("1000").unwrap()).unwrap().to_vec();
    let hits = index.search_probes(&v, 6, &Default::default(), 2).unwrap();
    let ids: Vec<&str> = hits.iter().skip(1).map(|h| h.id.as_str()).collect();
    assert_eq!((hits[0].id.as_str(), ids), ("1000", want));
    // New writes are placed in the stored partition.
    engine
        .add_items(vec![lookalike::engine::NewItem {
            id: "again".into(),
            photo: std::fs::read(sample().join("images/1001.jpg")).unwrap(),
            metadata: Default::default(),
        }])
        .unwrap();
    let after = engine.index();
    assert_eq!(after.cells().unwrap().unplaced(), 0);
    let key = after.key_of("again").unwrap();
    assert!(after.record(key).unwrap().cell.is_some_and(|c| c < 2));
}
