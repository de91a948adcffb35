//! Live updates on real photos: `add` and `remove` on the command line and through the
//! library from several threads at once, bad input refused whole, and a process killed
//! in the middle of a write; shards of a catalogue indexed into one folder at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;
use lookalike::engine::NewItem;
use lookalike::{Engine, Query};
use serde_json::Value;

const TINY: &str = "tests/fixtures/tiny-model/manifest.toml";

/// A small catalogue indexed with the tiny model (fast enough for many writes).
fn tiny_index(n: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    let ids = small_catalog(&cat, n);
    let idx = dir.path().join("idx");
    let model = root().join(TINY);
    ok(&["index", p(&cat), "--index", p(&idx), "--model", p(&model), "--backend", TEST_BACKEND]);
    (dir, idx, ids)
}

fn count(idx: &std::path::Path) -> u64 {
    let info: Value = serde_json::from_str(&ok(&["info", "--index", p(idx), "--json"])).unwrap();
    info["count"].as_u64().unwrap()
}

fn top(idx: &std::path::Path, photo: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["search", "--index", p(idx), p(photo), "--json", "--backend", TEST_BACKEND];
    args.extend_from_slice(extra);
    let v = &json_lines(&ok(&args))[0];
    v["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn add_and_remove_from_the_cli_are_visible_at_once_and_survive_reindexing() {
    let (dir, idx, _) = tiny_index(20);
    let hat = fixture("queries/hat.jpg");
    let out = ok(&[
        "add",
        "--index",
        p(&idx),
        p(&hat),
        "--set",
        "articleType=Caps",
        "--json",
        "--backend",
        TEST_BACKEND,
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["added"], serde_json::json!(["hat"]));
    assert_eq!(report["total_items"], 21);
    // `index` partitioned the 20 items (about √n cells); `add` placed the new one at once.
    let info: Value = serde_json::from_str(&ok(&["info", "--index", p(&idx), "--json"])).unwrap();
    assert_eq!((info["cells"].as_u64(), info["unplaced"].as_u64()), (Some(4), Some(0)));
    assert_eq!(top(&idx, &hat, &["--query-resize", "pad"])[0], "hat");
    for mode in ["--exact", "--ann"] {
        let caps = top(&idx, &hat, &["--filter", "articleType=caps", mode]);
        assert!(caps.contains(&"hat".to_string()), "{mode}: {caps:?}");
    }
    // Re-indexing the catalogue folder leaves the added item alone.
    let cat = dir.path().join("cat");
    let r: Value = serde_json::from_str(&ok(&[
        "index",
        p(&cat),
        "--index",
        p(&idx),
        "--backend",
        TEST_BACKEND,
        "--json",
    ]))
    .unwrap();
    assert_eq!((r["removed"].as_u64(), r["total_items"].as_u64()), (Some(0), Some(21)));
    // Adding the same id again replaces it.
    let again: Value = serde_json::from_str(&ok(&[
        "add",
        "--index",
        p(&idx),
        p(&hat),
        "--json",
        "--backend",
        TEST_BACKEND,
    ]))
    .unwrap();
    assert_eq!(again["replaced"], serde_json::json!(["hat"]));
    assert_eq!(count(&idx), 21);
    let photos: Vec<_> = std::fs::read_dir(idx.join("photos")).unwrap().collect();
    assert_eq!(photos.len(), 1, "one photo file per added item");

    // Repartitioning needs no catalogue folder: the same items, all placed again.
    let r: Value =
        serde_json::from_str(&ok(&["repartition", "--index", p(&idx), "--json"])).unwrap();
    let want = lookalike::index::cells_for(21) as u64;
    assert_eq!((r["cells"].as_u64(), r["trained"].as_bool()), (Some(want), Some(true)));
    let info: Value = serde_json::from_str(&ok(&["info", "--index", p(&idx), "--json"])).unwrap();
    assert_eq!((info["count"].as_u64(), info["unplaced"].as_u64()), (Some(21), Some(0)));
    assert_eq!(top(&idx, &hat, &["--query-resize", "pad", "--ann"])[0], "hat");
    let missing = lookalike(&["repartition", "--index", p(&dir.path().join("nothing"))]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not a lookalike index"));

    let out = ok(&["remove", "--index", p(&idx), "hat", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["total_items"], 20);
    assert!(!top(&idx, &hat, &[]).contains(&"hat".to_string()));
    assert_eq!(std::fs::read_dir(idx.join("photos")).unwrap().count(), 0, "its photo is gone");
}

#[test]
fn bad_writes_are_refused_whole_and_leave_the_index_alone() {
    let (_dir, idx, ids) = tiny_index(10);
    let good = fixture("queries/hat.jpg");
    let garbage = fixture("bad/garbage.png");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["add", "--index", p(&idx), p(&good), p(&garbage)], "garbage"),
        (vec!["add", "--index", p(&idx), p(&good), "--set", "colour=red"], "unknown filter column"),
        (vec!["add", "--index", p(&idx), p(&good), p(&good), "--id", "x"], "exactly one photo"),
        (vec!["add", "--index", p(&idx), p(&good), "--id", "a/b"], "slash"),
        (vec!["remove", "--index", p(&idx), &ids[0], "no-such-id"], "no-such-id"),
    ];
    for (args, needle) in cases {
        let out = lookalike(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: error should name {needle:?}: {err}");
        assert_eq!(count(&idx), 10, "{args:?} changed the index");
    }
    let v1 = tempfile::tempdir().unwrap();
    for f in ["data.mdb", "model.onnx"] {
        std::fs::copy(fixture("golden-index-v1").join(f), v1.path().join(f)).unwrap();
    }
    let out = lookalike(&["add", "--index", p(v1.path()), p(&good), "--backend", TEST_BACKEND]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upgrade"));
}

#[test]
fn writers_and_readers_interleave_from_several_threads() {
    let (_dir, idx, ids) = tiny_index(12);
    let engine = Arc::new(
        Engine::open(&lookalike::location::Location::Folder(idx.to_path_buf()), test_backend())
            .unwrap(),
    );
    let photos: Vec<Vec<u8>> = std::fs::read_dir(sample().join("images"))
        .unwrap()
        .take(60)
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (engine, done, photos) = (engine.clone(), done.clone(), photos.clone());
            std::thread::spawn(move || {
                let mut searches = 0;
                while !done.load(Ordering::Relaxed) || searches < 5 {
                    let q = Query { k: 5, ..Query::default() };
                    let hits =
                        engine.search_photo(&photos[searches % photos.len()], &q).unwrap().hits;
                    assert_eq!(hits.len(), 5, "reader {r}");
                    // A snapshot is whole: no id twice (a replaced item's old row), best first.
                    let mut uniq = HashSet::new();
                    assert!(hits.iter().all(|h| uniq.insert(h.id.clone())), "{hits:?}");
                    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
                    searches += 1;
                }
                searches
            })
        })
        .collect();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (engine, photos) = (engine.clone(), photos.clone());
            std::thread::spawn(move || {
                for i in 0..15 {
                    let id = format!("w{w}-{i}");
                    let item = NewItem {
                        id: id.clone(),
                        photo: photos[(w * 15 + i) % photos.len()].clone(),
                        metadata: Default::default(),
                    };
                    engine.add_items(vec![item]).unwrap();
                    assert!(engine.index().key_of(&id).is_some(), "visible at once");
                    if i % 3 == 0 {
                        engine.remove_items(std::slice::from_ref(&id)).unwrap();
                        assert!(engine.index().key_of(&id).is_none());
                    }
                }
            })
        })
        .collect();
    let remover = {
        let (engine, ids) = (engine.clone(), ids.clone());
        std::thread::spawn(move || {
            for id in &ids[..6] {
                engine.remove_items(std::slice::from_ref(id)).unwrap();
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    remover.join().unwrap();
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 5);
    }
    // 12 - 6 removed + 2 writers x (15 - 5 removed) = 26, in memory and on disk alike.
    assert_eq!(engine.index().len(), 26);
    drop(engine);
    let reopened =
        Engine::open(&lookalike::location::Location::Folder(idx.to_path_buf()), test_backend())
            .unwrap();
    assert_eq!(reopened.index().len(), 26);
    for id in &ids[..6] {
        assert!(reopened.index().key_of(id).is_none());
    }
    // Every write placed its items in the partition's cells, which hold exactly the live
    // items: scanning every cell finds each of them, and no removed one.
    let index = reopened.index();
    let cells = index.cells().expect("the index was partitioned by `index`").clone();
    assert_eq!(cells.unplaced(), 0);
    let all = cells.partition().cells();
    let v = index.vector(index.key_of("w0-1").unwrap()).unwrap().to_vec();
    let hits = index.search_probes(&v, 30, &Default::default(), all).unwrap();
    let mut found: Vec<String> = hits.into_iter().map(|h| h.id).collect();
    let mut live: Vec<String> = index.keys().map(|k| index.id(k).unwrap().to_string()).collect();
    found.sort();
    live.sort();
    assert_eq!(found, live);
}

#[test]
fn a_write_killed_at_any_moment_leaves_an_index_that_opens_and_answers() {
    let (_dir, idx, ids) = tiny_index(8);
    let photos: Vec<String> = std::fs::read_dir(sample().join("images"))
        .unwrap()
        .skip(100)
        .take(120)
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let stems: Vec<String> = photos
        .iter()
        .map(|f| std::path::Path::new(f).file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let full = stems.iter().chain(&ids).collect::<HashSet<_>>().len() as u64;
    let query = fixture("queries/tshirt.jpg");
    let mut seen = HashSet::new();
    // Kill the same 120-photo `add` after different delays: before, during and after its
    // one transaction, and after it.
    for delay_ms in [5u64, 40, 120, 250, 400, 700, 1200] {
        let before = count(&idx);
        let mut args = vec!["add", "--index", p(&idx), "--backend", TEST_BACKEND];
        args.extend(photos.iter().map(String::as_str));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lookalike"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let after = count(&idx);
        // All or nothing: the batch is one transaction.
        assert!(after == before || after == full, "{delay_ms} ms: {before} -> {after}");
        seen.insert(after);
        for mode in ["--exact", "--ann"] {
            assert_eq!(top(&idx, &query, &[mode]).len(), 5, "{delay_ms} ms {mode}");
        }
        if after == full {
            // Back to the start for the next kill (the replaced catalogue items stay).
            let mut rm = vec!["remove", "--index", p(&idx)];
            rm.extend(stems.iter().filter(|s| !ids.contains(s)).map(String::as_str));
            ok(&rm);
        }
    }
    assert!(seen.contains(&8), "some kill landed before the commit");
}

#[test]
fn a_server_writing_after_an_outside_repartition_places_items_in_the_new_cells() {
    let (_dir, idx, ids) = tiny_index(20);
    let engine =
        Engine::open(&lookalike::location::Location::Folder(idx.to_path_buf()), test_backend())
            .unwrap();
    assert_eq!(engine.index().cells().unwrap().partition().cells(), 4);
    // Another process grows the index and refits its partition meanwhile.
    let photos: Vec<String> = std::fs::read_dir(sample().join("images"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|f| !ids.iter().any(|id| f.ends_with(&format!("/{id}.jpg"))))
        .take(20)
        .collect();
    let mut args = vec!["add", "--index", p(&idx), "--backend", TEST_BACKEND];
    args.extend(photos.iter().map(String::as_str));
    ok(&args);
    ok(&["repartition", "--index", p(&idx)]);
    let cells = lookalike::index::cells_for(40);
    assert_ne!(cells, 4);
    // The engine still holds its snapshot of 20; its next write notices the new partition,
    // reloads (seeing the other process's items too) and places its item in the new cells.
    assert_eq!(engine.index().len(), 20);
    let photo = std::fs::read(fixture("queries/hat.jpg")).unwrap();
    let item = NewItem { id: "hat".into(), photo, metadata: Default::default() };
    let report = engine.add_items(vec![item]).unwrap();
    assert_eq!(report.total_items, 41);
    let index = engine.index();
    assert_eq!(index.cells().unwrap().partition().cells(), cells);
    assert_eq!(index.cells().unwrap().unplaced(), 0);
    drop(engine);
    let reopened =
        Engine::open(&lookalike::location::Location::Folder(idx.to_path_buf()), test_backend())
            .unwrap();
    let index = reopened.index();
    let key = index.key_of("hat").unwrap();
    let want = index.partition().unwrap().assign(index.vector(key).unwrap())[0];
    assert_eq!(index.record(key).unwrap().cell, Some(want));
}

/// Files in the index's `photos/` folder, and the ones its records name.
fn photo_files(idx: &std::path::Path, engine: &Engine) -> (HashSet<String>, HashSet<String>) {
    let on_disk: HashSet<String> = std::fs::read_dir(idx.join("photos"))
        .map(|d| {
            d.map(|e| format!("photos/{}", e.unwrap().file_name().to_string_lossy())).collect()
        })
        .unwrap_or_default();
    let snapshot = engine.index();
    let named: HashSet<String> = snapshot
        .keys()
        .filter_map(|k| snapshot.record(k))
        .filter(|r| r.added)
        .map(|r| r.path.clone())
        .collect();
    (on_disk, named)
}

#[test]
fn concurrent_writes_of_one_id_never_fail_or_leave_files_behind() {
    let (_dir, idx, _) = tiny_index(6);
    let engine = Arc::new(
        Engine::open(&lookalike::location::Location::Folder(idx.to_path_buf()), test_backend())
            .unwrap(),
    );
    let photos: Vec<Vec<u8>> = ["1100", "1101"]
        .iter()
        .map(|id| std::fs::read(sample().join(format!("images/{id}.jpg"))).unwrap())
        .collect();
    for round in 0..5 {
        // Six adds of the same id (two photos: same and different file names) and two
        // removals, all at once.
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (engine, photos) = (engine.clone(), photos.clone());
                std::thread::spawn(move || {
                    if w < 6 {
                        let item = NewItem {
                            id: "same".into(),
                            photo: photos[w % 2].clone(),
                            metadata: Default::default(),
                        };
                        engine.add_items(vec![item]).map(|_| ()).map_err(|e| e.to_string())
                    } else {
                        match engine.remove_items(&["same".to_string()]) {
                            Err(lookalike::Error::UnknownId(_)) => Ok(()),
                            other => other.map(|_| ()).map_err(|e| e.to_string()),
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        let (on_disk, named) = photo_files(&idx, &engine);
        assert_eq!(on_disk, named, "round {round}: files and records disagree");
        for rel in &named {
            assert!(std::fs::read(idx.join(rel)).is_ok(), "round {round}: {rel} unreadable");
        }
    }
}

#[test]
fn files_orphaned_by_a_killed_write_are_swept_at_the_next_write() {
    let (_dir, idx, _) = tiny_index(4);
    let photos = idx.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let old = photos.join("gone-0123abcd-0123456789abcdef.jpg");
    let tmp = photos.join("gone-0123abcd-0123456789abcdef.4242-0.tmp");
    let fresh = photos.join("fresh-0123abcd-0123456789abcdef.jpg");
    for f in [&old, &tmp, &fresh] {
        std::fs::write(f, b"left by a killed write").unwrap();
    }
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in [&old, &tmp] {
        std::fs::File::options().write(true).open(f).unwrap().set_modified(an_hour_ago).unwrap();
    }
    let engine =
        Engine::open(&lookalike::location::Location::Folder(idx.to_path_buf()), test_backend())
            .unwrap();
    let photo = std::fs::read(sample().join("images/1100.jpg")).unwrap();
    engine
        .add_items(vec![NewItem { id: "new".into(), photo, metadata: Default::default() }])
        .unwrap();
    assert!(!old.exists() && !tmp.exists(), "old orphans are removed");
    // A young one may belong to another process's write in progress: kept.
    assert!(fresh.exists());
    let (on_disk, named) = photo_files(&idx, &engine);
    assert_eq!(on_disk.len(), named.len() + 1, "{on_disk:?} vs {named:?}");
}

#[test]
fn an_engine_follows_writes_made_by_other_processes() {
    let (_dir, idx, ids) = tiny_index(12);
    let engine =
        Engine::open(&lookalike::location::Location::Folder(idx.to_path_buf()), test_backend())
            .unwrap();
    assert!(!engine.follow().unwrap(), "nothing to load yet");
    let hat = fixture("queries/hat.jpg");
    let before = engine.similar_to(&ids[0], &Query::default()).unwrap();

    // Another process adds: the engine sees it once it follows, and searches find it.
    ok(&["add", "--index", p(&idx), "--backend", TEST_BACKEND, "--id", "outside-hat", p(&hat)]);
    assert_eq!(engine.index().len(), 12, "a snapshot never changes by itself");
    assert!(engine.follow().unwrap());
    assert_eq!(engine.index().len(), 13);
    let q = Query { k: 1, ..Query::default() };
    let photo = std::fs::read(&hat).unwrap();
    let hits = engine.search_photo(&photo, &q).unwrap().hits;
    assert_eq!(hits[0].id, "outside-hat");
    assert!(!engine.follow().unwrap(), "loaded once");

    // Its own writes need no reload; an outside write before one of its own is loaded by
    // that write, so nothing is lost either way.
    let item = NewItem { id: "own".into(), photo: photo.clone(), metadata: Default::default() };
    assert_eq!(engine.add_items(vec![item]).unwrap().total_items, 14);
    assert!(!engine.follow().unwrap(), "its own write is in its snapshot already");
    ok(&["remove", "--index", p(&idx), "outside-hat"]);
    let report = engine.remove_items(&["own".to_string()]).unwrap();
    assert_eq!(report.total_items, 12, "the outside removal came in with the write");
    assert!(engine.index().key_of("outside-hat").is_none());
    assert!(!engine.follow().unwrap());

    // An outside removal: the same answers, without it.
    ok(&["remove", "--index", p(&idx), &ids[5]]);
    assert!(engine.follow().unwrap());
    assert!(engine.index().key_of(&ids[5]).is_none());
    let after = engine.similar_to(&ids[0], &Query::default()).unwrap();
    let without: Vec<_> = before.iter().filter(|h| h.id != ids[5]).map(|h| &h.id).collect();
    assert!(after.iter().map(|h| &h.id).take(without.len()).eq(without), "{after:?}");
}

#[test]
fn servers_on_one_index_see_each_others_writes_and_answer_alike() {
    let (_dir, idx, ids) = tiny_index(12);
    servers_see_each_others_writes(p(&idx), &ids);
}

#[test]
fn shards_indexed_at_once_into_a_new_folder_give_what_one_run_gives() {
    let (dir, one, ids) = tiny_index(30);
    let cat = dir.path().join("cat");
    let two = dir.path().join("sharded");
    let model = root().join(TINY);
    let reports: Vec<Value> = std::thread::scope(|s| {
        let runs: Vec<_> = ["0/3", "1/3", "2/3"]
            .map(|shard| {
                let (cat, two, model) = (&cat, &two, &model);
                s.spawn(move || {
                    let args = ["index", p(cat), "--index", p(two), "--model", p(model)];
                    let more = ["--backend", TEST_BACKEND, "--shard", shard, "--json"];
                    serde_json::from_str::<Value>(&ok(&[&args[..], &more[..]].concat())).unwrap()
                })
            })
            .into_iter()
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let added: u64 = reports.iter().map(|r| r["added"].as_u64().unwrap()).sum();
    assert_eq!(added, 30, "{reports:?}");
    assert_eq!(count(&two), 30);
    // Every item once, with the same neighbours (ids, scores, metadata) as the one run.
    for id in ids.iter().step_by(7) {
        let similar = |idx: &std::path::Path| {
            let args = ["search", "--index", p(idx), "--similar-to", id, "--json", "-k", "5"];
            let v: Value =
                serde_json::from_str(&ok(&[&args[..], &["--backend", TEST_BACKEND]].concat()))
                    .unwrap();
            v["results"].clone()
        };
        assert_eq!(similar(&one), similar(&two), "{id}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&two)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
