//! The planner, filters, cells and live snapshots against exact references.

use super::*;
use crate::store::{Change, MemoryStore};

fn record(pairs: &[(&str, &str)]) -> ItemRecord {
    let mut r = ItemRecord::default();
    for (k, v) in pairs {
        r.metadata.insert(k.to_string(), v.to_string());
    }
    r
}

fn index() -> VectorIndex {
    let s = MemoryStore::new();
    let items =
        [("a", [1.0, 0.0], "Watches"), ("b", [0.8, 0.6], "Shirts"), ("c", [0.0, 1.0], "watches")];
    let changes: Vec<Change> = items
        .iter()
        .map(|(id, v, t)| Change::Put {
            id: id.to_string(),
            record: record(&[("articleType", t)]),
            vector: v.to_vec(),
        })
        .collect();
    s.apply(None, &changes).unwrap();
    VectorIndex::load(&s, 2).unwrap()
}

fn ids(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

/// Deterministic unit vectors around `centres` cluster centres (like product photos).
fn clustered(rows: usize, dim: usize, centres: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let c: Vec<Vec<f32>> = (0..centres).map(|_| (0..dim).map(|_| next()).collect()).collect();
    (0..rows)
        .map(|i| {
            let mut v: Vec<f32> = c[i % centres].iter().map(|x| x + 0.4 * next()).collect();
            crate::embed::normalise(&mut v).unwrap();
            v
        })
        .collect()
}

fn put(i: usize, v: &[f32]) -> Change {
    let bucket = if i % 100 == 7 { "rare" } else { "common" };
    let single = if i == 1234 { "yes" } else { "no" };
    Change::Put {
        id: format!("{i:06}"),
        record: record(&[
            ("bucket", bucket),
            ("single", single),
            ("parity", &format!("{}", i % 2)),
        ]),
        vector: v.to_vec(),
    }
}

fn info(dim: usize) -> crate::store::IndexInfo {
    crate::store::IndexInfo {
        format_version: crate::store::FORMAT_VERSION,
        model: crate::model::ModelSpec {
            name: "t".into(),
            file: "m.onnx".into(),
            input: "i".into(),
            output: "o".into(),
            layout: crate::model::Layout::Nchw,
            size: 8,
            resize: crate::model::ResizeMode::Pad,
            mean: [0.0; 3],
            std: [1.0; 3],
            dim,
            query_size: None,
            heads: None,
            mask: None,
            close_match: None,
        },
        model_hash: String::new(),
        dim,
        columns: vec!["bucket".into(), "single".into(), "parity".into()],
        catalog: None,
        colour_weight: 0.0,
    }
}

#[test]
fn filter_returns_matching_items_even_when_far() {
    let idx = index();
    let cols = vec!["articleType".to_string()];
    let f = Filter::parse(&["articletype=WATCHES"], &cols).unwrap();
    let exact = SearchMode::Exact;
    let hits = idx.search(&[0.8, 0.6], 5, &f, None, exact).unwrap();
    assert_eq!(ids(&hits), vec!["a", "c"]);
    let none = Filter::parse(&["articleType=Socks"], &cols).unwrap();
    assert!(idx.search(&[0.8, 0.6], 5, &none, None, exact).unwrap().is_empty());
    let any = Filter::parse(&["articleType=Socks", "articleType=Shirts"], &cols).unwrap();
    assert_eq!(idx.search(&[1.0, 0.0], 5, &any, None, exact).unwrap().len(), 1);
}

#[test]
fn bad_filters_are_named() {
    let cols = vec!["articleType".to_string()];
    assert!(matches!(Filter::parse(&["colour=red"], &cols), Err(Error::UnknownColumn { .. })));
    assert!(matches!(Filter::parse(&["nonsense"], &cols), Err(Error::BadFilter(_))));
}

#[test]
fn exclude_and_wrong_dimension() {
    let idx = index();
    let a = idx.key_of("a").unwrap();
    let all = Filter::default();
    let hits = idx.search(&[1.0, 0.0], 1, &all, Some(a), SearchMode::Exact).unwrap();
    assert_eq!(hits[0].id, "b");
    assert!(idx.search(&[1.0, 0.0, 0.0], 1, &all, None, SearchMode::Exact).is_err());
}

#[test]
fn large_index_search_equals_the_exact_reference() {
    // Above COMPACT_SCAN_MIN_ROWS the scan runs on i8 codes; results must not change,
    // whether the filter is broad (masked scan) or sparse (row list).
    let (dim, rows) = (16, COMPACT_SCAN_MIN_ROWS + 900);
    let vectors = clustered(rows, dim, 50, 42);
    let s = MemoryStore::new();
    let changes: Vec<Change> = vectors.iter().enumerate().map(|(i, v)| put(i, v)).collect();
    s.apply(None, &changes).unwrap();
    let idx = VectorIndex::load(&s, dim).unwrap();
    let seg = idx.compacted();
    assert!(seg.q8().is_some());
    let cols: Vec<String> = ["bucket", "single", "parity"].map(String::from).to_vec();
    for (spec, pass) in [
        ("parity=1", &(|i: usize| i % 2 == 1) as &dyn Fn(usize) -> bool),
        ("bucket=rare", &|i: usize| i % 100 == 7),
    ] {
        let f = Filter::parse(&[spec], &cols).unwrap();
        for qi in 0..20 {
            let q = seg.vector(qi * 37).to_vec();
            let got: Vec<String> = idx
                .search(&q, 10, &f, None, SearchMode::Exact)
                .unwrap()
                .into_iter()
                .map(|h| h.id)
                .collect();
            let want: Vec<String> = kernel::top_k_scalar(seg.matrix(), dim, &q, 10, pass)
                .iter()
                .map(|s| seg.id(s.row).to_string())
                .collect();
            assert_eq!(got, want, "{spec}, query {qi}");
        }
    }
}

#[test]
fn live_changes_keep_segments_few_and_answers_exact() {
    let dim = 8;
    let vectors = clustered(3000, dim, 40, 7);
    let s = MemoryStore::new();
    let base: Vec<Change> = vectors[..2000].iter().enumerate().map(|(i, v)| put(i, v)).collect();
    s.apply(Some(&info(dim)), &base).unwrap();
    let mut idx = VectorIndex::load(&s, dim).unwrap();
    // 1,000 single adds and 300 removals, each a new snapshot.
    for (i, v) in vectors.iter().enumerate().skip(2000) {
        let keys = s.apply(None, &[put(i, v)]).unwrap();
        let Change::Put { id, record, vector } = put(i, v) else { unreachable!() };
        idx = idx.with_changes(vec![Item { key: keys[0], id, record, vector }], &[]);
        assert!(
            idx.segment_count() <= 2 + (i as f64).log2() as usize,
            "{} segments",
            idx.segment_count()
        );
        if i % 3 == 0 {
            let victim = format!("{:06}", i - 1500);
            let key = idx.key_of(&victim).unwrap();
            s.apply(None, &[Change::Delete { id: victim }]).unwrap();
            idx = idx.with_changes(Vec::new(), &[key]);
        }
    }
    assert_eq!(idx.len(), s.len().unwrap());
    // Same answers as an index loaded afresh from the store.
    let fresh = VectorIndex::load(&s, dim).unwrap();
    assert_eq!(fresh.segment_count(), 1);
    let cols: Vec<String> = ["bucket", "single", "parity"].map(String::from).to_vec();
    for spec in [None, Some("parity=0"), Some("bucket=rare")] {
        let f = spec.map_or(Filter::default(), |s| Filter::parse(&[s], &cols).unwrap());
        for q in vectors.iter().step_by(97) {
            let a = idx.search(q, 10, &f, None, SearchMode::Exact).unwrap();
            let b = fresh.search(q, 10, &f, None, SearchMode::Exact).unwrap();
            assert_eq!(ids(&a), ids(&b));
        }
    }
    // Removed ids are gone, and compaction gives one segment with the same items.
    assert!(idx.key_of("000501").is_none());
    assert_eq!(idx.compacted().len(), idx.len());
}

#[test]
fn cell_search_recall_filters_with_0_1_few_all_matches_and_live_changes() {
    let (dim, rows) = (32, 4000);
    let vectors = clustered(rows, dim, 200, 3);
    let s = MemoryStore::new();
    let changes: Vec<Change> = vectors.iter().enumerate().map(|(i, v)| put(i, v)).collect();
    s.apply(Some(&info(dim)), &changes).unwrap();
    // Without a partition, forcing ANN still answers (exactly).
    let plain = VectorIndex::load(&s, dim).unwrap();
    assert!(plain.cells().is_none());
    let q = &vectors[0];
    let all = Filter::default();
    assert_eq!(
        ids(&plain.search(q, 10, &all, None, SearchMode::Ann).unwrap()),
        ids(&plain.search(q, 10, &all, None, SearchMode::Exact).unwrap())
    );
    let report = partition::refresh(&s, dim, false).unwrap();
    assert_eq!((report.cells, report.trained, report.placed), (63, true, rows));
    // A second refresh has nothing to do.
    let again = partition::refresh(&s, dim, false).unwrap();
    assert_eq!((again.trained, again.placed), (false, 0));
    // Asked to, it trains anew (same seed, same items: the same cells).
    let forced = partition::refresh(&s, dim, true).unwrap();
    assert_eq!((forced.cells, forced.trained, forced.placed), (63, true, 0));
    let idx = VectorIndex::load(&s, dim).unwrap();
    let cells = idx.cells().unwrap();
    assert_eq!(cells.unplaced(), 0);
    let cols: Vec<String> = ["bucket", "single", "parity"].map(String::from).to_vec();
    let mut found = 0;
    let mut total = 0;
    for q in vectors.iter().skip(5).step_by(40) {
        let exact = idx.search(q, 10, &all, None, SearchMode::Exact).unwrap();
        let ann = idx.search(q, 10, &all, None, SearchMode::Ann).unwrap();
        // Scanning every cell is the exact search.
        let every = idx.search_probes(q, 10, &all, cells.partition().cells()).unwrap();
        assert_eq!(ids(&every), ids(&exact));
        assert_eq!(ann.len(), 10);
        total += exact.len();
        found += exact.iter().filter(|h| ann.iter().any(|a| a.id == h.id)).count();
        // Scores of approximate hits are the exact cosines.
        for h in &ann {
            let v = idx.vector(idx.key_of(&h.id).unwrap()).unwrap();
            assert_eq!(h.score, kernel::dot(v, q));
        }
        // Filters: none match, one matches, few (1%), all.
        for (spec, expect) in [("bucket=nothing", 0), ("single=yes", 1), ("bucket=rare", 10)] {
            let f = Filter::parse(&[spec], &cols).unwrap();
            let e = idx.search(q, 10, &f, None, SearchMode::Exact).unwrap();
            let a = idx.search(q, 10, &f, None, SearchMode::Ann).unwrap();
            assert_eq!(e.len(), expect, "{spec}");
            assert_eq!(ids(&a), ids(&e), "{spec}: a selective filter probes every cell");
            assert!(a.iter().all(|h| f.matches(&h.metadata)), "{spec}");
        }
        let everything = Filter::parse(&["bucket=rare", "bucket=common"], &cols).unwrap();
        let a = idx.search(q, 10, &everything, None, SearchMode::Ann).unwrap();
        assert_eq!(a.len(), 10);
    }
    let recall = found as f64 / total as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");

    // Live changes keep the cells in step: a replaced item moves, a removed one goes,
    // an item without a cell is scanned by every probe.
    let moved = idx.key_of("000010").unwrap();
    let gone = idx.key_of("000011").unwrap();
    let far: Vec<f32> = vectors[123].clone();
    let p = idx.partition().unwrap();
    let cell = p.assign(&far)[0];
    let mut record = idx.record(moved).unwrap().clone();
    record.cell = Some(cell);
    let replaced =
        Item { key: 50_000, id: "000010".into(), record: record.clone(), vector: far.clone() };
    let stray = Item {
        key: 50_001,
        id: "stray".into(),
        record: ItemRecord { cell: None, ..record },
        vector: vectors[77].clone(),
    };
    let next = idx.with_changes(vec![replaced, stray], &[moved, gone]);
    assert_eq!(next.cells().unwrap().unplaced(), 1);
    assert_eq!(idx.cells().unwrap().unplaced(), 0, "the old snapshot is untouched");
    let hits = next.search_probes(&far, 3, &all, 1).unwrap();
    assert!(hits.iter().any(|h| h.id == "000010"), "found in its new cell");
    assert!(
        next.search_probes(&vectors[77], 400, &all, 1).unwrap().iter().any(|h| h.id == "stray")
    );
    let everywhere = next.search_probes(&vectors[11], 4000, &all, 63).unwrap();
    assert!(everywhere.iter().all(|h| h.id != "000011"));
    assert_eq!(everywhere.len(), next.len());

    // Items written without a cell are placed by the next refresh; an index grown past
    // twice the cells its partition has gets a new one.
    let more = clustered(14_000, dim, 200, 4);
    let changes: Vec<Change> = more.iter().enumerate().map(|(i, v)| put(rows + i, v)).collect();
    s.apply(None, &changes[..100]).unwrap();
    // One shard's indexing run places only its own items.
    let even = |id: &str| id.ends_with(['0', '2', '4', '6', '8']);
    let own = partition::place(&s, dim, &even).unwrap();
    assert_eq!((own.cells, own.trained, own.placed), (63, false, 50));
    let placed = partition::refresh(&s, dim, false).unwrap();
    assert_eq!((placed.cells, placed.trained, placed.placed), (63, false, 50));
    assert_eq!(VectorIndex::load(&s, dim).unwrap().cells().unwrap().unplaced(), 0);
    s.apply(None, &changes[100..]).unwrap();
    // A shard never trains the partition, even one the index has outgrown.
    let shard = partition::place(&s, dim, &|_| true).unwrap();
    assert_eq!((shard.cells, shard.trained, shard.placed), (63, false, 13_900));
    let grown = partition::refresh(&s, dim, false).unwrap();
    assert_eq!((grown.cells, grown.trained), (cells_for(rows + 14_000), true));
    assert!(grown.cells > 2 * 63);
}

#[test]
fn the_planner_scans_cells_only_for_many_candidates_and_broad_filters() {
    let big = ANN_MIN_CANDIDATES + 500;
    let cells = Some(1000);
    let probes = probes_for(1000);
    assert!((ANN_MIN_PROBES..1000).contains(&probes));
    let cases = [
        (big, big, SearchMode::Auto, cells, Some(probes)), // many candidates: cells
        (big, big, SearchMode::Auto, None, None),          // no partition: exact
        (big / 2, big, SearchMode::Auto, cells, None),     // too few candidates
        (big / 100, big, SearchMode::Auto, cells, None),   // 1% filter: exact over it
        (big / 1000, big, SearchMode::Ann, cells, None),   // forced, but every cell: exact
        (big / 2, big, SearchMode::Ann, cells, Some(2 * probes)), // half: twice the cells
        (big, big, SearchMode::Exact, cells, None),
        (10, 10, SearchMode::Ann, Some(3), None), // 3 cells of 3: exact
        (10, 10, SearchMode::Ann, Some(100), Some(probes_for(100))),
        (0, 10, SearchMode::Ann, Some(100), None),
    ];
    for (n, total, mode, cells, want) in cases {
        assert_eq!(plan(n, total, mode, cells), want, "{n} of {total}, {mode:?}, {cells:?}");
    }
}

#[test]
fn a_query_between_cells_probes_more_of_them_and_finds_its_neighbours() {
    let (dim, rows) = (32, 4000);
    let vectors = clustered(rows, dim, 200, 5);
    let s = MemoryStore::new();
    let changes: Vec<Change> = vectors.iter().enumerate().map(|(i, v)| put(i, v)).collect();
    s.apply(Some(&info(dim)), &changes).unwrap();
    partition::refresh(&s, dim, false).unwrap();
    let idx = VectorIndex::load(&s, dim).unwrap();
    let cells = idx.cells().unwrap();
    let near = cells.near();
    assert!(near > 0.0 && near < 1.0, "{near}");
    let probes = 4;
    // Catalogue items sit as close to their centroid as most items: the planned cells.
    let at_home = vectors
        .iter()
        .step_by(50)
        .filter(|q| cells.probed_cells(q, probes).len() == probes)
        .count();
    assert!(at_home >= 70, "{at_home} of 80 items probed only the planned cells");
    // A query between clusters (the mean of three items of different ones) lies far from
    // every centroid: more cells, at most MAX_PROBE_FACTOR times as many, nearest first.
    let all = Filter::default();
    let (mut found, mut found_fixed, mut total, mut widened) = (0, 0, 0, 0);
    for i in 0..40 {
        let mut q: Vec<f32> =
            (0..dim).map(|d| vectors[i][d] + vectors[i + 67][d] + vectors[i + 131][d]).collect();
        crate::embed::normalise(&mut q).unwrap();
        let chosen = cells.probed_cells(&q, probes);
        assert!(chosen.len() >= probes && chosen.len() <= 4 * probes, "{}", chosen.len());
        assert_eq!(chosen[..probes], cells.partition().nearest(&q, probes)[..]);
        widened += usize::from(chosen.len() > probes);
        let exact = idx.search(&q, 10, &all, None, SearchMode::Exact).unwrap();
        let adaptive =
            idx.search_in_cells(cells, &q, 10, None, None, super::Probes::Adaptive(probes));
        let fixed = idx.search_probes(&q, 10, &all, probes).unwrap();
        total += exact.len();
        found += exact.iter().filter(|h| adaptive.iter().any(|a| a.id == h.id)).count();
        found_fixed += exact.iter().filter(|h| fixed.iter().any(|a| a.id == h.id)).count();
    }
    assert!(widened >= 20, "{widened} of 40 queries between clusters widened");
    assert!(found > found_fixed, "adaptive {found} vs fixed {found_fixed} of {total}");
}
