//! One behaviour suite, run against every [`Store`] backend.

use super::*;
use crate::model::{Layout, ModelSpec, ResizeMode};

fn info(dim: usize) -> IndexInfo {
    IndexInfo {
        format_version: FORMAT_VERSION,
        model: ModelSpec {
            name: "m".into(),
            file: "model.onnx".into(),
            input: "i".into(),
            output: "o".into(),
            layout: Layout::Nchw,
            size: 8,
            resize: ResizeMode::Pad,
            mean: [0.0; 3],
            std: [1.0; 3],
            dim,
        },
        model_hash: "h".into(),
        dim,
        columns: vec!["articleType".into()],
        catalog: None,
    }
}

fn put(id: &str, v: Vec<f32>) -> Change {
    let mut record =
        ItemRecord { path: format!("{id}.jpg"), hash: format!("h{id}"), ..Default::default() };
    record.metadata.insert("articleType".into(), format!("type-{id}"));
    Change::Put { id: id.into(), record, vector: v }
}

pub(crate) fn run_all(store: &dyn Store) {
    assert!(store.info().unwrap().is_none(), "new store has no description");
    assert!(store.is_empty().unwrap());

    store.apply(Some(&info(2)), &[put("b", vec![0.0, 1.0]), put("a", vec![1.0, 0.0])]).unwrap();
    assert_eq!(store.info().unwrap().unwrap().dim, 2);
    assert_eq!(store.len().unwrap(), 2);
    let (rec, v) = store.get("a").unwrap().unwrap();
    assert_eq!((rec.path.as_str(), v), ("a.jpg", vec![1.0, 0.0]));
    assert!(store.get("zzz").unwrap().is_none());

    // Iteration is in id order and pairs records with their vectors.
    let mut seen = Vec::new();
    store
        .for_each(&mut |id, r, v| seen.push((id.to_string(), r.hash.clone(), v.to_vec())))
        .unwrap();
    assert_eq!(
        seen,
        vec![("a".into(), "ha".into(), vec![1.0, 0.0]), ("b".into(), "hb".into(), vec![0.0, 1.0])]
    );

    // A wrong dimension rejects the whole batch.
    let err = store.apply(None, &[put("c", vec![1.0, 1.0]), put("d", vec![1.0])]).unwrap_err();
    assert!(matches!(err, StoreError::DimensionMismatch { expected: 2, got: 1, .. }), "{err}");
    assert!(store.get("c").unwrap().is_none(), "failed batch left nothing behind");

    // A record update for a missing item rejects the whole batch too.
    let bad = Change::Record { id: "ghost".into(), record: ItemRecord::default() };
    assert!(store.apply(None, &[put("c", vec![1.0, 1.0]), bad]).is_err());
    assert!(store.get("c").unwrap().is_none());

    // Record-only updates keep the vector; deletes remove both.
    let mut rec = store.get("a").unwrap().unwrap().0;
    rec.metadata.insert("articleType".into(), "Watches".into());
    store
        .apply(
            None,
            &[Change::Record { id: "a".into(), record: rec }, Change::Delete { id: "b".into() }],
        )
        .unwrap();
    let (rec, v) = store.get("a").unwrap().unwrap();
    assert_eq!(rec.metadata["articleType"], "Watches");
    assert_eq!(v, vec![1.0, 0.0]);
    assert!(store.get("b").unwrap().is_none());
    assert_eq!(store.records().unwrap().len(), 1);
}

#[test]
fn memory_store_passes_the_suite() {
    run_all(&MemoryStore::new());
}

#[test]
fn lmdb_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    run_all(&LmdbStore::open(dir.path()).unwrap());
}

#[test]
fn lmdb_store_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = LmdbStore::open(dir.path()).unwrap();
        s.apply(Some(&info(2)), &[put("x", vec![0.5, 0.5])]).unwrap();
    }
    let s = LmdbStore::open_existing(dir.path()).unwrap();
    assert_eq!(s.get("x").unwrap().unwrap().1, vec![0.5, 0.5]);
}

#[test]
fn newer_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = LmdbStore::open(dir.path()).unwrap();
        let mut i = info(2);
        i.format_version = FORMAT_VERSION + 1;
        s.apply(Some(&i), &[]).unwrap();
    }
    match LmdbStore::open(dir.path()) {
        Err(StoreError::UnsupportedVersion { found, .. }) => assert_eq!(found, FORMAT_VERSION + 1),
        other => panic!("expected UnsupportedVersion, got {:?}", other.err()),
    }
}

#[test]
fn a_folder_without_an_index_is_named() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(LmdbStore::open_existing(dir.path()), Err(StoreError::NotAnIndex(_))));
}
