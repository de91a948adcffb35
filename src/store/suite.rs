//! One behaviour suite, run against every [`Store`] backend.

use super::*;
use crate::model::{Layout, ModelSpec, ResizeMode};

pub(crate) fn info(dim: usize) -> IndexInfo {
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
            query_size: None,
            heads: None,
            mask: None,
            close_match: None,
        },
        model_hash: "h".into(),
        dim,
        columns: vec!["articleType".into()],
        catalog: None,
        colour_weight: 0.0,
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

    let keys =
        store.apply(Some(&info(2)), &[put("b", vec![0.0, 1.0]), put("a", vec![1.0, 0.0])]).unwrap();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "every item gets its own key");
    assert_eq!(store.get("b").unwrap().unwrap().0.key, Some(keys[0]));
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
    assert_eq!(rec.key, Some(keys[1]), "a record update keeps the key");
    assert!(store.get("b").unwrap().is_none());
    assert_eq!(store.records().unwrap().len(), 1);

    // Replacing an item gives it a new key; keys are never handed out twice.
    let again = store.apply(None, &[put("a", vec![0.6, 0.8]), put("b", vec![0.0, 1.0])]).unwrap();
    assert!(again.iter().all(|k| !keys.contains(k)), "{again:?} reuses {keys:?}");
    assert_eq!(store.get("a").unwrap().unwrap().0.key, Some(again[0]));

    // Centroids and cells land with the batch that carries them, and go when cleared;
    // each replacement is a new generation.
    assert_eq!(store.centroids().unwrap(), None);
    let generation = store.partition_generation().unwrap();
    let mut placed = store.get("b").unwrap().unwrap().0;
    placed.cell = Some(1);
    let centroids = vec![1.0, 0.0, 0.0, 1.0];
    store
        .apply(
            None,
            &[
                Change::Centroids(centroids.clone()),
                Change::Record { id: "b".into(), record: placed.clone() },
            ],
        )
        .unwrap();
    assert_eq!(store.centroids().unwrap(), Some(centroids.clone()));
    assert_eq!(store.partition_generation().unwrap(), generation + 1);
    assert_eq!(store.get("b").unwrap().unwrap().0, placed);
    // A failing batch leaves the old centroids.
    let bad = Change::Record { id: "nobody".into(), record: placed.clone() };
    assert!(store.apply(None, &[Change::Centroids(vec![0.5; 4]), bad]).is_err());
    assert_eq!(store.centroids().unwrap(), Some(centroids));
    assert_eq!(store.partition_generation().unwrap(), generation + 1);
    store.apply(None, &[put("c", vec![1.0, 0.0])]).unwrap();
    assert_eq!(store.partition_generation().unwrap(), generation + 1, "items are no new partition");
    store.apply(None, &[Change::Centroids(Vec::new())]).unwrap();
    assert_eq!(store.centroids().unwrap(), None);
    assert_eq!(store.partition_generation().unwrap(), generation + 2);

    // Every committed batch of changes is one more version; reads, failed batches and a
    // description alone are none.
    let version = store.version().unwrap();
    store.apply(None, &[put("d", vec![0.0, 1.0]), Change::Delete { id: "c".into() }]).unwrap();
    assert_eq!(store.version().unwrap(), version + 1);
    assert!(store.apply(None, &[put("e", vec![1.0])]).is_err());
    store.apply(Some(&info(2)), &[]).unwrap();
    let _ = (store.get("d").unwrap(), store.records().unwrap(), store.len().unwrap());
    assert_eq!(store.version().unwrap(), version + 1);
    store.apply(None, &[Change::Delete { id: "d".into() }]).unwrap();
    assert_eq!(store.version().unwrap(), version + 2);

    // Files kept beside the items: read back whole (one larger than a Milvus text field),
    // replaced whole, removed; the others untouched, and no file is a new version.
    assert_eq!(store.read_file("photos/a.jpg").unwrap(), None);
    let big: Vec<u8> = (0..150_000u32).map(|i| (i.wrapping_mul(7) % 251) as u8).collect();
    store.write_file("photos/a.jpg", &big).unwrap();
    store.write_file("projection.bin", b"small").unwrap();
    assert_eq!(store.read_file("photos/a.jpg").unwrap().as_deref(), Some(&big[..]));
    store.write_file("photos/a.jpg", b"replaced").unwrap();
    assert_eq!(store.read_file("photos/a.jpg").unwrap().as_deref(), Some(&b"replaced"[..]));
    store.write_file("empty", b"").unwrap();
    assert_eq!(store.read_file("empty").unwrap().as_deref(), Some(&b""[..]));
    // Listed by folder, without its subfolders' files, each just written.
    store.write_file("photos/b.jpg", b"b").unwrap();
    store.write_file("photos/deeper/c.jpg", b"c").unwrap();
    let listed = store.list_files("photos").unwrap();
    let names: Vec<&str> = listed.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["photos/a.jpg", "photos/b.jpg"]);
    assert!(listed.iter().all(|f| f.age.is_some_and(|a| a.as_secs() < 60)), "{listed:?}");
    assert_eq!(store.list_files("nothing-here").unwrap(), []);
    store.remove_file("photos/b.jpg").unwrap();
    store.remove_file("photos/deeper/c.jpg").unwrap();
    store.remove_file("photos/a.jpg").unwrap();
    store.remove_file("photos/a.jpg").unwrap();
    assert_eq!(store.read_file("photos/a.jpg").unwrap(), None);
    assert_eq!(store.read_file("projection.bin").unwrap().as_deref(), Some(&b"small"[..]));
    assert_eq!(store.version().unwrap(), version + 2);
    for bad in ["", "/etc/passwd", "../x", "photos/../../x", "a//b", "a/./b", "a\\b", "a\nb"] {
        for result in [
            store.read_file(bad).map(|_| ()),
            store.write_file(bad, b"x"),
            store.remove_file(bad),
            store.list_files(bad).map(|_| ()),
        ] {
            assert!(matches!(result, Err(StoreError::BadFileName { .. })), "{bad:?}: {result:?}");
        }
    }
}

/// The reads of a store that answers them itself ([`Store::reads`]), on a fresh store:
/// what a query server without a snapshot asks.
pub(crate) fn run_reads(store: &dyn Store) {
    let typed = |id: &str, kind: &str, v: Vec<f32>| {
        let mut record =
            ItemRecord { path: format!("{id}.jpg"), hash: format!("h{id}"), ..Default::default() };
        record.metadata.insert("articleType".into(), kind.into());
        Change::Put { id: id.into(), record, vector: v }
    };
    let items = [
        typed("a", "Shirts", vec![1.0, 0.0]),
        typed("b", "Tshirts", vec![0.8, 0.6]),
        typed("c", "Shirts", vec![0.6, 0.8]),
        typed("d", "Watches", vec![0.0, 1.0]),
        typed("e", "Shirts", vec![-1.0, 0.0]),
    ];
    store.apply(Some(&info(2)), &items).unwrap();
    let reads = store.reads().expect("this store answers reads");

    // The nearest, best first, with records (no keys) and vectors; filtered on lower-cased
    // values; one left out.
    let found = reads.nearest_items(&[1.0, 0.0], 3, &[], None).unwrap();
    let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!((found[1].score - 0.8).abs() < 1e-5, "{found:?}");
    assert_eq!(found[1].vector, vec![0.8, 0.6]);
    assert_eq!(found[1].record.metadata["articleType"], "Tshirts");
    assert_eq!(found[1].record.key, None);
    let shirts = [("articleType".to_string(), vec!["shirts".to_string()])];
    let found = reads.nearest_items(&[1.0, 0.0], 5, &shirts, Some("a")).unwrap();
    let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["c", "e"]);

    // By id (unknown ones left out), counted, paged in id order, scanned once each.
    let got = reads.items(&["d".to_string(), "zzz".to_string()]).unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), ["d"]);
    assert_eq!((got["d"].0.key, got["d"].1.clone()), (None, vec![0.0, 1.0]));
    assert_eq!(reads.count(&[]).unwrap(), 5);
    assert_eq!(reads.count(&shirts).unwrap(), 3);
    let page = |conditions: &[(String, Vec<String>)], offset, limit| -> Vec<String> {
        reads.page(conditions, offset, limit).unwrap().into_iter().map(|(id, _)| id).collect()
    };
    assert_eq!(page(&[], 1, 2), ["b", "c"]);
    assert_eq!(page(&shirts, 0, 10), ["a", "c", "e"]);
    assert_eq!(page(&shirts, 2, 10), ["e"]);
    assert!(page(&shirts, 3, 10).is_empty());
    let mut scanned = Vec::new();
    reads.scan_records(&mut |id, r| scanned.push((id.to_string(), r.path.clone()))).unwrap();
    scanned.sort();
    assert_eq!(scanned.len(), 5);
    assert_eq!(scanned[4], ("e".to_string(), "e.jpg".to_string()));

    // The store's own writes are read at once.
    store
        .apply(None, &[Change::Delete { id: "a".into() }, typed("f", "Shirts", vec![1.0, 0.0])])
        .unwrap();
    let found = reads.nearest_items(&[1.0, 0.0], 1, &shirts, None).unwrap();
    assert_eq!(found[0].id, "f");
    assert_eq!(reads.count(&shirts).unwrap(), 3);
    assert!(reads.items(&["a".to_string()]).unwrap().is_empty());
    assert_eq!(page(&[], 0, 2), ["b", "c"]);
}

#[test]
fn memory_store_passes_the_suite() {
    run_all(&MemoryStore::new());
    run_reads(&MemoryStore::new());
}

#[test]
fn lmdb_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    run_all(&LmdbStore::open(dir.path()).unwrap());
    // A folder's readers load a snapshot: it answers no reads itself.
    assert!(LmdbStore::open(dir.path()).unwrap().reads().is_none());
}

#[test]
fn an_index_folder_reads_no_link_or_fifo_as_a_kept_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = LmdbStore::open(dir.path()).unwrap();
    std::fs::create_dir_all(dir.path().join("photos")).unwrap();
    std::fs::write(dir.path().join("secret"), b"outside").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), dir.path().join("photos/link.jpg"))
        .unwrap();
    assert!(s.read_file("photos/link.jpg").is_err());
    let fifo =
        std::ffi::CString::new(dir.path().join("photos/fifo.jpg").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    assert!(s.read_file("photos/fifo.jpg").is_err(), "refused, not a hang");
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
fn a_v1_index_opens_read_only_and_upgrades_on_the_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-index-v1");
    std::fs::copy(golden.join("data.mdb"), dir.path().join("data.mdb")).unwrap();
    {
        let s = LmdbStore::open_existing(dir.path()).unwrap();
        assert_eq!(s.info().unwrap().unwrap().format_version, 1);
        assert!(s.records().unwrap().iter().all(|(_, r)| r.key.is_none()));
    }
    let s = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(s.info().unwrap().unwrap().format_version, FORMAT_VERSION);
    // Keys in id order: what readers of the v1 index assumed.
    let keys: Vec<Option<u32>> = s.records().unwrap().iter().map(|(_, r)| r.key).collect();
    assert_eq!(keys, (0..6).map(Some).collect::<Vec<_>>());
    let (_, v) = s.get("1087").unwrap().unwrap();
    let new = s.apply(None, &[Change::Delete { id: "1000".into() }, put("z", v.clone())]).unwrap();
    assert_eq!(new, vec![6], "new keys continue after the upgraded ones");
}

#[test]
fn a_v2_index_opens_as_it_is_and_upgrades_keeping_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-index-v2");
    std::fs::copy(golden.join("data.mdb"), dir.path().join("data.mdb")).unwrap();
    let keys = {
        let s = LmdbStore::open_existing(dir.path()).unwrap();
        assert_eq!(s.info().unwrap().unwrap().format_version, 2);
        assert_eq!(s.centroids().unwrap(), None);
        s.records().unwrap()
    };
    let s = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(s.info().unwrap().unwrap().format_version, FORMAT_VERSION);
    assert_eq!(s.records().unwrap(), keys, "records and keys untouched");
    assert_eq!(s.centroids().unwrap(), None, "partitioned by the next `index` run");
    let (_, v) = s.get("1087").unwrap().unwrap();
    let max = keys.iter().filter_map(|(_, r)| r.key).max().unwrap();
    let new = s.apply(None, &[put("z", v)]).unwrap();
    assert!(new[0] > max, "new keys continue after the stored ones");
}

#[test]
fn a_folder_without_an_index_is_named() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(LmdbStore::open_existing(dir.path()), Err(StoreError::NotAnIndex(_))));
}
