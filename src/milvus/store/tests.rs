//! `MilvusStore` against a real server: the store suite, two processes on one collection,
//! searching inside Milvus, and a server that is not there.

use std::collections::BTreeMap;

use super::*;
use crate::store::Change;

/// A fresh collection name per test, on the shared test server.
fn store(name: &str) -> MilvusStore {
    let (host, port) = super::super::test_server::address();
    let collection = format!("{name}_{}", std::process::id());
    let address = MilvusAddress { host, port, collection };
    let store = MilvusStore::open(&address).unwrap();
    store.drop_all().unwrap();
    store
}

#[test]
fn milvus_store_passes_the_suite() {
    // Pages of 1 row: walking the collection takes several queries.
    let store = store("suite").with_page(1);
    crate::store::suite::run_all(&store);
    store.drop_all().unwrap();
    // Windows of 2 rows: scanning takes several.
    let reading = self::store("reads").with_page(2);
    crate::store::suite::run_reads(&reading);
    reading.drop_all().unwrap();
}

#[test]
fn kept_files_are_listed_with_their_age_for_the_orphan_sweep() {
    let store = store("kept");
    store.apply(Some(&crate::store::suite::info(3)), &[]).unwrap();
    for name in ["photos/new.jpg", "photos/old.jpg", "photos/older.jpg", "projection.bin"] {
        store.write_file(name, name.as_bytes()).unwrap();
    }
    let hour_ago =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
            - 3600;
    store.backdate_kept("photos/old.jpg", hour_ago);
    // Written by a version that kept no time: as old as can be.
    store.backdate_kept("photos/older.jpg", 0);
    let listed = store.list_files("photos").unwrap();
    let ages: Vec<(&str, u64)> =
        listed.iter().map(|f| (f.name.as_str(), f.age.unwrap().as_secs())).collect();
    assert_eq!(ages.len(), 3, "{ages:?}");
    assert_eq!(ages[0].0, "photos/new.jpg");
    assert!(ages[0].1 < 60, "{ages:?}");
    assert!(ages[1].0 == "photos/old.jpg" && (3600..3700).contains(&ages[1].1), "{ages:?}");
    assert!(ages[2].0 == "photos/older.jpg" && ages[2].1 > 3600 * 24 * 365, "{ages:?}");
    store.drop_all().unwrap();
}

#[test]
fn a_second_process_sees_the_same_index() {
    let a = store("shared");
    let b = MilvusStore::open(a.address()).unwrap();
    assert!(b.info().unwrap().is_none() && !b.exists().unwrap());
    let info = crate::store::suite::info(3);
    let record = ItemRecord { path: "x.jpg".into(), hash: "h".into(), ..Default::default() };
    let put = |id: &str| Change::Put {
        id: id.into(),
        record: record.clone(),
        vector: vec![0.0, 0.6, 0.8],
    };
    let many: Vec<Change> = (0..25).map(|i| put(&format!("item-{i:02}"))).collect();
    let keys = a.apply(Some(&info), &many).unwrap();
    assert_eq!(b.info().unwrap().map(|i| i.dim), Some(3));
    assert_eq!((b.version().unwrap(), b.len().unwrap()), (1, 25));
    // Ids that would break an unquoted expression are stored and found as they are.
    let odd = ["a\"b", "x\" or id != \"", "back\\slash", "new\nline", "ünï cødé"];
    a.apply(None, &odd.iter().map(|id| put(id)).collect::<Vec<_>>()).unwrap();
    for id in odd {
        assert_eq!(b.get(id).unwrap().map(|(r, _)| r.path), Some("x.jpg".into()), "{id:?}");
    }
    assert!(b.get("x").unwrap().is_none());
    a.apply(None, &[Change::Delete { id: odd[1].into() }]).unwrap();
    assert!(b.get(odd[1]).unwrap().is_none() && b.get(odd[0]).unwrap().is_some());
    // Walking pages of 7 meets every item once, in id order, with its vector.
    let mut seen = Vec::new();
    let c = MilvusStore::open(a.address()).unwrap().with_page(7);
    c.for_each(&mut |id, r, v| {
        assert_eq!(v, [0.0, 0.6, 0.8]);
        seen.push((id.to_string(), r.key));
    })
    .unwrap();
    let mut want: Vec<String> = (0..25).map(|i| format!("item-{i:02}")).collect();
    want.extend([odd[0], odd[2], odd[3], odd[4]].map(String::from));
    want.sort();
    assert_eq!(seen.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), want);
    // Keys are each process's own: unique in it, and kept while the item is unchanged.
    let b_keys: std::collections::HashSet<Option<u32>> = seen.iter().map(|s| s.1).collect();
    assert_eq!(b_keys.len(), seen.len());
    assert!(!b_keys.contains(&None));
    let first = seen.iter().find(|(id, _)| id == "item-00").and_then(|(_, key)| *key);
    assert_eq!(c.get("item-00").unwrap().and_then(|(r, _)| r.key), first);
    assert_eq!(a.get("item-00").unwrap().and_then(|(r, _)| r.key), Some(keys[0]));
    // Both processes' batches count in the version, whichever wrote them.
    b.apply(None, &[put("item-00")]).unwrap();
    assert_eq!((a.version().unwrap(), b.version().unwrap()), (4, 4));
    let before = a.get("item-00").unwrap().and_then(|(r, _)| r.key);
    a.apply(None, &[put("item-00")]).unwrap();
    let again = a.get("item-00").unwrap().and_then(|(r, _)| r.key);
    assert!(again.is_some() && again != before, "a replaced item gets a new key");
    a.drop_all().unwrap();
}

#[test]
fn an_unreachable_server_is_named() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let address = MilvusAddress { host: "127.0.0.1".into(), port, collection: "c".into() };
    let e = MilvusStore::open(&address).unwrap_err().to_string();
    assert!(e.contains("cannot reach Milvus") && e.contains(&address.to_string()), "{e}");
}

#[test]
fn a_collection_searches_its_items_with_quoted_filters() {
    let s = store("search");
    let info = crate::store::suite::info(4);
    let colours = ["Navy Blue", "red", "a\"] || id != \"x"];
    let items: Vec<(String, &str, Vec<f32>)> = (0..30)
        .map(|i| {
            let a = i as f32 * 0.21;
            let v = vec![a.cos() * 0.8, a.sin() * 0.8, 0.6 * (i % 3) as f32 / 2.0, 0.1];
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            (format!("item-{i:02}"), colours[i % 3], v.into_iter().map(|x| x / n).collect())
        })
        .collect();
    let changes: Vec<Change> = items
        .iter()
        .map(|(id, colour, v)| Change::Put {
            id: id.clone(),
            record: ItemRecord {
                path: format!("{id}.jpg"),
                hash: id.clone(),
                metadata: BTreeMap::from([("baseColour".to_string(), colour.to_string())]),
                ..Default::default()
            },
            vector: v.clone(),
        })
        .collect();
    s.apply(Some(&info), &changes).unwrap();
    let query = items[7].2.clone();
    // The exact answer, by brute force over the items that pass.
    let exact = |pass: &dyn Fn(&str, &str) -> bool, k: usize| -> Vec<String> {
        let mut scored: Vec<(f32, &String)> = items
            .iter()
            .filter(|(id, c, _)| pass(id, c))
            .map(|(id, _, v)| (v.iter().zip(&query).map(|(a, b)| a * b).sum(), id))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        scored.into_iter().take(k).map(|(_, id)| id.clone()).collect()
    };
    let ids = |found: Option<Vec<(String, f32)>>| -> Vec<String> {
        found.expect("a collection searches").into_iter().map(|(id, _)| id).collect()
    };
    let navy = vec![("baseColour".to_string(), vec!["navy blue".to_string()])];
    assert_eq!(ids(s.nearest(&query, 5, &[], None).unwrap()), exact(&|_, _| true, 5));
    assert_eq!(
        ids(s.nearest(&query, 5, &navy, Some("item-09")).unwrap()),
        exact(&|id, c| c == "Navy Blue" && id != "item-09", 5)
    );
    // A value that would end the literal and add a condition, were it spliced in, matches
    // only the items that hold it.
    let odd = vec![("baseColour".to_string(), vec![colours[2].to_lowercase()])];
    let found = ids(s.nearest(&query, 30, &odd, None).unwrap());
    assert_eq!(found.len(), 10);
    assert_eq!(found, exact(&|_, c| c == colours[2], 30));
    let unknown = vec![("season".to_string(), vec!["summer".to_string()])];
    assert!(ids(s.nearest(&query, 5, &unknown, None).unwrap()).is_empty());
    // Sealed (as `index` leaves a collection), the same items are found.
    s.flush().unwrap();
    assert_eq!(ids(s.nearest(&query, 5, &[], None).unwrap()), exact(&|_, _| true, 5));
    // A removed item is no longer found, by another process either.
    s.apply(None, &[Change::Delete { id: "item-07".into() }]).unwrap();
    let other = MilvusStore::open(s.address()).unwrap();
    other.for_each(&mut |_, _, _| {}).unwrap();
    let after = ids(other.nearest(&query, 3, &[], None).unwrap());
    assert_eq!(after, exact(&|id, _| id != "item-07", 3));
    s.drop_all().unwrap();
}

#[test]
fn each_csv_column_is_a_field_of_the_collection_with_its_text() {
    let s = store("columns");
    let header = ["articleType", "base colour", "gender", "id", "productDisplayName"];
    let info = IndexInfo {
        columns: header.iter().map(|c| c.to_string()).collect(),
        ..crate::store::suite::info(3)
    };
    let long = "Ü".repeat(columns::MAX_VALUE);
    let item = |id: &str, pairs: &[(&str, &str)]| Change::Put {
        id: id.into(),
        record: ItemRecord {
            path: format!("{id}.jpg"),
            hash: id.into(),
            metadata: pairs.iter().map(|(c, v)| (c.to_string(), v.to_string())).collect(),
            ..Default::default()
        },
        vector: vec![0.0, 0.6, 0.8],
    };
    let shirt = [("articleType", "Shirts"), ("base colour", "Navy Blue"), ("gender", "Men")];
    let name = [("articleType", "Tops"), ("productDisplayName", long.as_str())];
    s.apply(Some(&info), &[item("a", &shirt), item("b", &name)]).unwrap();
    let (client, items) = (s.client.clone(), s.items().to_string());
    let fields = s.run(async move { client.field_names(&items).await }).unwrap();
    for (field, want) in [
        ("articleType", true),
        ("gender", true),
        ("productDisplayName", true),
        ("base colour", false),
    ] {
        assert_eq!(fields.iter().any(|f| f == field), want, "{field} in {fields:?}");
    }
    // Other tools filter on a column's field with the CSV's text.
    let query = |expr: &str| {
        let (client, items, expr) = (s.client.clone(), s.items().to_string(), expr.to_string());
        let out = ["id", "articleType", "gender", "productDisplayName"];
        let cols = s.run(async move { client.query(&items, &expr, &out, None).await }).unwrap();
        let get = |n| strings(&cols, n);
        (get("id"), get("articleType"), get("gender"), get("productDisplayName"))
    };
    let (ids, types, genders, names) = query(r#"articleType == "Shirts""#);
    assert_eq!(
        (ids, types, genders),
        (vec!["a".into()], vec!["Shirts".into()], vec!["Men".into()])
    );
    assert_eq!(names, vec![String::new()], "a column the item lacks is empty");
    let (ids, _, _, names) = query(r#"id == "b""#);
    assert_eq!(ids, vec!["b".to_string()]);
    assert!(names[0].len() <= columns::MAX_VALUE && long.starts_with(&names[0]));
    // Every column, those without a field and whole long values included, stays in the
    // record; a column the header lacked is written there too.
    let later = [("articleType", "Shirts"), ("season", "Summer")];
    s.apply(None, &[item("c", &later)]).unwrap();
    let other = MilvusStore::open(s.address()).unwrap();
    let record = |id: &str| other.get(id).unwrap().map(|(r, _)| r.metadata).unwrap();
    assert_eq!(record("a").get("base colour").map(String::as_str), Some("Navy Blue"));
    assert_eq!(record("b").get("productDisplayName"), Some(&long));
    assert_eq!(record("c").get("season").map(String::as_str), Some("Summer"));
    s.drop_all().unwrap();
}

#[test]
fn a_flush_returns_once_the_vector_index_covers_every_row() {
    let s = store("flushed");
    let info = crate::store::suite::info(3);
    // Past the 1,024 rows below which Milvus indexes no segment.
    let changes: Vec<Change> = (0..3000)
        .map(|i| {
            let a = i as f32 * 0.01;
            Change::Put {
                id: format!("item-{i:04}"),
                record: ItemRecord { path: "x.jpg".into(), hash: "h".into(), ..Default::default() },
                vector: vec![a.cos() * 0.8, a.sin() * 0.8, 0.6],
            }
        })
        .collect();
    s.apply(Some(&info), &changes).unwrap();
    s.flush().unwrap();
    let (client, items) = (s.client.clone(), s.items().to_string());
    match s.run(async move { client.index_built(&items).await }) {
        Ok(built) => assert!(built, "flush returned before the index was built"),
        // milvus-lite keeps no segments and describes no index build: nothing to wait for.
        Err(e) => assert!(std::env::var("MILVUS_URI").is_ok(), "{e}"),
    }
    s.drop_all().unwrap();
}

#[test]
fn a_milvus_error_stays_typed_inside_the_store_error() {
    let e =
        backend(MilvusError::Connect { address: "milvus://h:1/c".into(), message: "down".into() });
    let source = std::error::Error::source(&e).unwrap();
    assert!(matches!(source.downcast_ref::<MilvusError>(), Some(MilvusError::Connect { .. })));
    // Said once: the store's message, then the cause.
    assert_eq!(
        crate::error::chain(&e),
        "index storage error: cannot reach Milvus at milvus://h:1/c: down"
    );
}
