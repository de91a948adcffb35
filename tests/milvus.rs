//! An index in a Milvus collection, against a real Milvus server (the embedded standalone
//! one the test run shares, or `MILVUS_URI`; each test in collections of its own): the
//! same commands give the same answers as on a folder index, writes through one process
//! are seen by servers on the same collection, and bad addresses or a server that is down
//! are clear errors.

use crate::common::*;
use serde_json::Value;

fn run_json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

/// Results of one photo query: ids and scores.
fn search(index: &str, extra: &[&str]) -> Vec<(String, f64)> {
    let photo = fixture("queries/tshirt.jpg");
    let mut args = vec!["search", "--index", index, "--json", "-k", "8", p(&photo)];
    args.extend_from_slice(extra);
    let v = run_json(&args);
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["score"].as_f64().unwrap()))
        .collect()
}

fn assert_same_results(a: &[(String, f64)], b: &[(String, f64)]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.0, y.0, "{a:?} vs {b:?}");
        assert!((x.1 - y.1).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn a_collection_answers_every_command_as_the_folder_does() {
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let ids = small_catalog(&cat, 40);
    let folder = tmp.path().join("idx");
    let folder = p(&folder);
    let coll = milvus_index("commands");

    let a = run_json(&["index", p(&cat), "--index", folder, "--json"]);
    let b = run_json(&["index", p(&cat), "--index", &coll, "--json"]);
    for field in ["photos_found", "added", "total_items", "model", "cells"] {
        assert_eq!(a[field], b[field], "{field}");
    }
    assert_eq!(b["added"], 40);

    // The same description, the catalogue recorded alike.
    let (ia, ib) = (
        run_json(&["info", "--index", folder, "--json"]),
        run_json(&["info", "--index", &coll, "--json"]),
    );
    for field in ["model", "count", "dimension", "columns", "catalog", "predicts", "cells"] {
        assert_eq!(ia[field], ib[field], "{field}");
    }

    // Searches: plain, filtered, by item, exact and through the partition.
    assert_same_results(&search(folder, &[]), &search(&coll, &[]));
    let filter = ["--filter", "articleType=Tshirts"];
    assert_same_results(&search(folder, &filter), &search(&coll, &filter));
    assert_same_results(&search(folder, &["--ann"]), &search(&coll, &["--ann"]));
    // An approximate search of a collection runs in Milvus (its call log names the Search
    // call), filtered there too, and finds what the exact search finds at this size.
    for extra in [&["--ann"][..], &["--ann", "--filter", "articleType=Tshirts"]] {
        let photo = fixture("queries/tshirt.jpg");
        let mut args = vec!["search", "--index", &coll, "--json", "-k", "8", p(&photo)];
        args.extend_from_slice(extra);
        let out = lookalike_env(&args, &[("LOOKALIKE_LOG", "lookalike=debug".to_string())]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("\"Search\""), "{extra:?} did not search in Milvus:\n{log}");
        let exact = [&["--exact"][..], &extra[1..]].concat();
        assert_same_results(&search(&coll, extra), &search(&coll, &exact));
    }
    let similar = ["search", "--similar-to", &ids[3], "-k", "5", "--json", "--index"];
    let (sa, sb) = (
        run_json(&[&similar[..], &[folder]].concat()),
        run_json(&[&similar[..], &[coll.as_str()]].concat()),
    );
    assert_eq!(sa["results"], sb["results"]);

    // Evaluation gives the same figures.
    let eval = ["eval", "--leave-one-out", "-k", "5", "--json", "--index"];
    let (ea, eb) = (
        run_json(&[&eval[..], &[folder]].concat()),
        run_json(&[&eval[..], &[coll.as_str()]].concat()),
    );
    assert_eq!(timeless(ea), timeless(eb));
    // On the collection it says that it holds it all (paged leave-one-out is not built).
    let said = |index: &str| {
        let out = lookalike(&[&eval[..], &[index]].concat());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(said(&coll).contains("holds the whole collection in memory"), "{}", said(&coll));
    assert!(!said(folder).contains("holds the whole collection"), "{}", said(folder));

    // A re-run embeds nothing; an added photo is found, its photo kept by the collection,
    // and removed again.
    let again = run_json(&["index", p(&cat), "--index", &coll, "--json"]);
    assert_eq!((again["unchanged"].as_u64(), again["added"].as_u64()), (Some(40), Some(0)));
    let hat = fixture("queries/hat.jpg");
    let added = run_json(&[
        "add",
        "--index",
        &coll,
        "--id",
        "shop-hat",
        "--set",
        "articleType=Caps",
        "--json",
        p(&hat),
    ]);
    assert_eq!(added["total_items"], 41, "{added}");
    let found = run_json(&["search", "--index", &coll, "--json", "-k", "1", p(&hat)]);
    assert_eq!(found["results"][0]["id"], "shop-hat", "{found}");
    let server = Server::start(&coll);
    let url = format!("http://127.0.0.1:{}/images/shop-hat", server.port);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let photo = rt.block_on(async { reqwest::get(&url).await.unwrap().bytes().await.unwrap() });
    assert_eq!(photo.as_ref(), std::fs::read(&hat).unwrap().as_slice());
    drop(server);
    let removed = run_json(&["remove", "--index", &coll, "shop-hat", "--json"]);
    assert_eq!(removed["total_items"], 40, "{removed}");
    assert_eq!(run_json(&["info", "--index", &coll, "--json"])["count"], 40);

    // A trained projection is kept by the collection and used by its searches.
    let ta = run_json(&["train", "--index", folder, "--json", "--epochs", "3", "--seed", "7"]);
    let tb = run_json(&["train", "--index", &coll, "--json", "--epochs", "3", "--seed", "7"]);
    assert_eq!(ta["items"], tb["items"]);
    assert_eq!(ta["final_loss"], tb["final_loss"], "same items, same seed, same projection");
    assert!(
        run_json(&["info", "--index", &coll, "--json"])["trained"]["classes"].as_u64() > Some(1)
    );
    assert_same_results(&search(folder, &["--trained"]), &search(&coll, &["--trained"]));
}

/// A POST of `json` or of a photo (multipart, field `image`) to a server; the JSON answer.
fn post(port: u16, path: &str, json: Option<Value>, photo: Option<&std::path::Path>) -> Value {
    let url = format!("http://127.0.0.1:{port}{path}");
    let boundary = "lookalike-test-boundary";
    let (kind, body) = match (json, photo) {
        (Some(j), _) => ("application/json".to_string(), serde_json::to_vec(&j).unwrap()),
        (None, Some(photo)) => {
            let mut body = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; \
                 filename=\"q.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            )
            .into_bytes();
            body.extend(std::fs::read(photo).unwrap());
            body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
            (format!("multipart/form-data; boundary={boundary}"), body)
        }
        (None, None) => ("application/json".to_string(), b"{}".to_vec()),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let res = reqwest::Client::new()
            .post(&url)
            .header("content-type", kind)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let bytes = res.bytes().await.unwrap();
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&bytes));
        serde_json::from_slice(&bytes).unwrap()
    })
}

#[test]
fn a_server_on_a_collection_holds_no_item_and_answers_as_the_folder_does() {
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let ids = small_catalog(&cat, 30);
    let folder = tmp.path().join("idx");
    let folder = p(&folder);
    let coll = milvus_index("stateless");
    ok(&["index", p(&cat), "--index", folder, "--json"]);
    ok(&["index", p(&cat), "--index", &coll, "--json"]);
    let held =
        |index: &str| run_json(&["info", "--index", index, "--json"])["items_in_memory"].clone();
    assert_eq!((held(folder), held(&coll)), (Value::from(30), Value::from(0)));

    // A server without a snapshot counts the catalogue after it starts listening, and is
    // ready once it has (its engine's side is tested below).
    let (a, b) = (Server::start(folder), Server::start(&coll));
    assert_eq!(b.until("/readyz", 200)["ready"], true);
    let (sa, sb) = (a.until("/api/stats", 200), b.until("/api/stats", 200));
    assert_eq!(
        (sa["items_in_memory"].as_u64(), sb["items_in_memory"].as_u64()),
        (Some(30), Some(0))
    );
    for field in ["count", "columns", "predicts", "model"] {
        assert_eq!(sa[field], sb[field], "{field}");
    }
    let kind = sa["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "articleType")
        .map(|c| c["values"][0]["value"].as_str().unwrap().to_string())
        .unwrap();
    let filtered = format!("/api/items?per_page=3&page=2&filter=articleType={kind}");
    for path in [
        "/api/facets".to_string(),
        "/api/items?per_page=7&page=2".to_string(),
        filtered,
        format!("/api/items/{}", ids[4]),
        "/api/items/no-such-item".to_string(),
    ] {
        assert_eq!(a.call("GET", &path), b.call("GET", &path), "{path}");
    }
    for path in [
        format!("/api/items/{}/similar?k=5", ids[2]),
        format!("/api/items/{}/similar?k=4&collapse=0.95&filter=articleType={kind}", ids[7]),
    ] {
        assert_eq!(a.results(&path), b.results(&path), "{path}");
    }
    let like = serde_json::json!({"like": [ids[1], ids[5]], "unlike": [ids[9]], "k": 5});
    let (ra, rb) = (
        post(a.port, "/api/recommend", Some(like.clone()), None),
        post(b.port, "/api/recommend", Some(like), None),
    );
    assert_eq!(ra["results"], rb["results"]);
    assert!(ra["results"].as_array().unwrap().iter().all(|r| r["id"] != ids[1].as_str()));
    let hat = fixture("queries/hat.jpg");
    let (pa, pb) = (
        post(a.port, "/api/search?k=5", None, Some(&hat)),
        post(b.port, "/api/search?k=5", None, Some(&hat)),
    );
    assert_eq!(pa["results"], pb["results"]);
    assert_eq!(pa["predicted"], pb["predicted"]);

    // Its own writes are in its next answers, counts included.
    let (s, v) = b.call("DELETE", &format!("/api/items/{}", ids[2]));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total_items"], 29, "{v}");
    assert_eq!(b.call("GET", &format!("/api/items/{}", ids[2])).0, 404);
    let stats = b.until("/api/stats", 200);
    assert_eq!(stats["count"], 29, "{stats}");
    let counted: u64 = stats["columns"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["count"].as_u64().unwrap())
        .sum::<u64>()
        + stats["columns"][0]["missing"].as_u64().unwrap();
    assert_eq!(counted, 29, "the census counts the removal: {stats}");
    assert!(
        b.results(&format!("/api/items/{}/similar?k=29", ids[3]))
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != ids[2].as_str())
    );
}

#[test]
fn servers_on_one_collection_see_each_others_writes_and_answer_alike() {
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let ids = small_catalog(&cat, 12);
    let coll = milvus_index("servers");
    ok(&["index", p(&cat), "--index", &coll, "--json"]);
    servers_see_each_others_writes(&coll, &ids);
}

#[test]
fn a_new_collection_gets_the_vector_index_asked_for_and_keeps_it() {
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    small_catalog(&cat, 24);
    for kind in ["ivf_flat", "ivf_sq8"] {
        let coll = milvus_index(&format!("kind_{kind}"));
        let made =
            run_json(&["index", p(&cat), "--index", &coll, "--milvus-index", kind, "--json"]);
        assert_eq!(made["added"], 24, "{made}");
        // Searched inside Milvus, it finds what the exact search finds first.
        let (ann, exact) = (search(&coll, &["--ann"]), search(&coll, &["--exact"]));
        assert_eq!(ann[0].0, exact[0].0, "{kind}: {ann:?} vs {exact:?}");
        // Another kind is refused by name; the same one is an ordinary re-run.
        let out = lookalike(&["index", p(&cat), "--index", &coll, "--milvus-index", "hnsw"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(kind) && err.contains("hnsw"), "{err}");
        let again =
            run_json(&["index", p(&cat), "--index", &coll, "--milvus-index", kind, "--json"]);
        assert_eq!(again["unchanged"], 24, "{again}");
    }
    // A folder has no Milvus index to choose.
    let folder = tmp.path().join("folder");
    let out = lookalike(&["index", p(&cat), "--index", p(&folder), "--milvus-index", "hnsw"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("milvus-index") && err.contains("folder"), "{err}");
    assert!(!folder.join("data.mdb").exists(), "a refused run left an index behind");
}

#[test]
fn bad_addresses_and_a_server_that_is_down_are_named() {
    let photo = fixture("queries/hat.jpg");
    let cases = [
        ("milvus://127.0.0.1/shop", "no port"),
        ("milvus://127.0.0.1:19530/9lives", "collection name"),
        ("milvus://127.0.0.1:19530/", "collection name"),
    ];
    for (address, why) in cases {
        let out = lookalike(&["search", "--index", address, p(&photo)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{address}: {err}");
        assert!(err.contains(why) && err.contains(address), "{address}: {err}");
    }
    // Nothing listens there: named, not a hang.
    let down = format!("milvus://127.0.0.1:{}/shop", free_port());
    for args in [
        vec!["search", "--index", down.as_str(), p(&photo)],
        vec!["info", "--index", down.as_str()],
        vec!["index", p(&sample()), "--index", down.as_str()],
    ] {
        let started = std::time::Instant::now();
        let out = lookalike(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("cannot reach Milvus") && err.contains(&down), "{args:?}: {err}");
        assert!(started.elapsed().as_secs() < 30, "{args:?} took {:?}", started.elapsed());
    }
    // A collection that holds no index.
    let missing = milvus_index("nothing_here");
    let out = lookalike(&["info", "--index", &missing]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a lookalike index") && err.contains(&missing), "{err}");
}

/// What a collection holds, as far as answers show it (a third of its items' neighbours).
fn contents(index: &str, ids: &[String]) -> Vec<Value> {
    answers(index, ids, ids.len().div_ceil(3))
}

#[test]
fn shards_indexed_at_once_give_the_collection_one_run_gives_and_resume_when_killed() {
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    let ids = small_catalog(&cat, 36);
    let one = milvus_index("unsharded");
    let two = milvus_index("sharded");
    ok(&["index", p(&cat), "--index", &one, "--json"]);

    // Two processes fill one new collection at the same time, each its half.
    let reports: Vec<Value> = std::thread::scope(|s| {
        let runs: Vec<_> = ["0/2", "1/2"]
            .map(|shard| {
                let (cat, two) = (&cat, &two);
                s.spawn(move || {
                    run_json(&["index", p(cat), "--index", two, "--shard", shard, "--json"])
                })
            })
            .into_iter()
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let found: Vec<u64> = reports.iter().map(|r| r["photos_found"].as_u64().unwrap()).collect();
    assert!(found.iter().all(|&n| n > 0) && found.iter().sum::<u64>() == 36, "{reports:?}");
    for r in &reports {
        assert_eq!(r["added"], r["photos_found"], "{r}");
        assert_eq!(r["metadata_rows_without_photo"], 0, "rows of the other shard are not missing");
    }
    assert_eq!(reports[0]["shard"], "0/2");
    let info = run_json(&["info", "--index", &two, "--json"]);
    assert_eq!(info["count"], 36, "{info}");
    assert_eq!(contents(&one, &ids), contents(&two, &ids));
    assert_same_results(&search(&one, &[]), &search(&two, &[]));

    // A re-run of one shard embeds nothing; a photo gone from the catalogue is removed by
    // its own shard's run only.
    let again = run_json(&["index", p(&cat), "--index", &two, "--shard", "1/2", "--json"]);
    assert_eq!((again["unchanged"].clone(), again["added"].clone()), (found[1].into(), 0.into()));
    let gone =
        ids.iter().find(|id| lookalike::catalog::Shard::new(0, 2).unwrap().holds(id)).unwrap();
    std::fs::remove_file(cat.join(format!("images/{gone}.jpg"))).unwrap();
    let other = run_json(&["index", p(&cat), "--index", &two, "--shard", "1/2", "--json"]);
    assert_eq!(other["removed"], 0, "{other}");
    let own = run_json(&["index", p(&cat), "--index", &two, "--shard", "0/2", "--json"]);
    assert_eq!(own["removed"], 1, "{own}");
    assert_eq!(run_json(&["info", "--index", &two, "--json"])["count"], 35);

    // A shard's run killed in the middle, then run again: every item once, with its metadata.
    let three = milvus_index("killed");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lookalike"))
        .args(["index", p(&cat), "--index", &three, "--shard", "0/1", "--batch-size", "1"])
        .args(["--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let out = lookalike(&["info", "--index", &three, "--json"]);
        let count =
            serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v["count"].as_u64());
        if count.is_some_and(|n| n >= 3) || started.elapsed().as_secs() > 120 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let cut = run_json(&["info", "--index", &three, "--json"])["count"].as_u64().unwrap();
    let resumed = run_json(&["index", p(&cat), "--index", &three, "--shard", "0/1", "--json"]);
    assert_eq!(resumed["unchanged"].as_u64(), Some(cut), "{resumed}");
    assert_eq!(resumed["added"].as_u64(), Some(35 - cut), "{resumed}");
    assert_eq!(run_json(&["info", "--index", &three, "--json"])["count"], 35);
    let left: Vec<String> = ids.iter().filter(|id| *id != gone).cloned().collect();
    assert_eq!(contents(&three, &left), contents(&two, &left));

    // Bad shards are named before anything is done.
    for (shard, says) in [("2/2", "does not exist in 2 shards"), ("1", "write I/N")] {
        let out = lookalike(&["index", p(&cat), "--index", &two, "--shard", shard]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
    let out = lookalike(&["index", p(&cat), "--index", &two, "--shard", "0/2", "--repartition"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("never trains the partition"), "{err}");
}

/// `bench fill` (the scale run's catalogue): the same grown catalogue in a folder and in
/// a collection, with the source's items as they are and copies drawn near them with
/// their metadata; it writes only a new index, and says why not otherwise.
#[test]
fn bench_fill_grows_a_folder_and_a_collection_alike_and_overwrites_nothing() {
    require_ort();
    let src = crate::common::fixtures::sample_index().path();
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("grown");
    let coll = milvus_index("grown");
    let n = run_json(&["info", "--index", src, "--json"])["count"].as_u64().unwrap();
    // 5,000 items: enough for Milvus to build its HNSW index over the sealed segment
    // (and an interim index over growing ones), so the collection's answers come from
    // an approximate index, searched as soon as `fill` returns.
    let count = 5_000;
    let mut answers = Vec::new();
    for (into, mode) in [(p(&folder), "--exact"), (coll.as_str(), "--ann")] {
        let r = run_json(&[
            "bench",
            "fill",
            "--index",
            src,
            "--into",
            into,
            "--count",
            &count.to_string(),
        ]);
        assert_eq!((r["items"].as_u64(), r["real"].as_u64()), (Some(count), Some(n)), "{r}");
        assert_eq!(r["synthetic"].as_u64(), Some(count - n), "{r}");
        assert_eq!(r["writes"].as_u64(), Some(count.div_ceil(2000)), "{r}");
        // At once: the collection is searched inside Milvus, by its vector index.
        answers.push(search(into, &[mode]));
        let info = run_json(&["info", "--index", into, "--json"]);
        assert_eq!(info["count"].as_u64(), Some(count), "{info}");
        assert_eq!(info["model"], lookalike::model::FASHION, "{info}");
    }
    // The same rows: a photo's answers from the collection (searched inside Milvus right
    // after the fill, no item held) are the folder's exact ones, copies among them.
    assert_same_results(&answers[1], &answers[0]);
    assert_same_results(&search(&coll, &[]), &answers[0]);
    // A copy lies near its source (its nearest item, not a duplicate of it) and
    // carries the source's metadata.
    let photo = fixture("queries/tshirt.jpg");
    let v = run_json(&["search", "--index", p(&folder), "--json", "-k", "8", "--exact", p(&photo)]);
    let copy =
        v["results"].as_array().unwrap().iter().find(|r| r["id"].as_str().unwrap().contains('~'));
    let copy = copy.expect("copies are found as products are");
    let id = copy["id"].as_str().unwrap();
    let source = id.split('~').next().unwrap();
    for index in [p(&folder), coll.as_str()] {
        let v = run_json(&["search", "--index", index, "--similar-to", id, "-k", "1", "--json"]);
        let near = &v["results"][0];
        assert_eq!(near["id"], source, "{near}");
        assert!(near["score"].as_f64().unwrap() < 0.999, "{near}");
        assert_eq!(near["metadata"], copy["metadata"], "{near} {copy}");
    }

    // Nothing that exists is overwritten, and bad numbers are named.
    for into in [p(&folder), coll.as_str(), src] {
        let out = lookalike(&["bench", "fill", "--index", src, "--into", into, "--count", "5"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("holds an index already"), "{err}");
    }
    assert_eq!(run_json(&["info", "--index", p(&folder), "--json"])["count"].as_u64(), Some(count));
    let fresh = tmp.path().join("fresh");
    for (arg, name) in [("--sigma=-1", "sigma"), ("--count=0", "count")] {
        let out = lookalike(&["bench", "fill", "--index", src, "--into", p(&fresh), arg]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(name), "{err}");
    }
    assert!(!fresh.exists() || std::fs::read_dir(&fresh).unwrap().next().is_none());
}

/// Opening an engine that holds no item of a collection counts nothing: the census (a
/// walk over every record) is `warm`'s, or the first search's, so that a server listens
/// meanwhile. An engine with a snapshot has nothing to count.
#[test]
fn an_engine_on_a_collection_counts_the_catalogue_when_warmed_not_when_opened() {
    use lookalike::engine::{Engine, Residency};
    use lookalike::location::Location;
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let cat = tmp.path().join("cat");
    small_catalog(&cat, 12);
    let coll = milvus_index("warm");
    ok(&["index", p(&cat), "--index", &coll, "--json"]);
    let open = |residency| {
        let at = Location::parse(&coll).unwrap();
        Engine::open_held(
            &at,
            test_backend(),
            None,
            Default::default(),
            Default::default(),
            residency,
        )
        .unwrap()
    };
    let engine = open(Residency::InStoreWherePossible);
    assert_eq!(engine.items_in_memory(), 0);
    assert!(!engine.warmed());
    engine.warm().unwrap();
    assert!(engine.warmed());
    assert_eq!(engine.census().unwrap().items, 12);
    // A search takes the count itself when nothing warmed the engine.
    let cold = open(Residency::InStoreWherePossible);
    let photo = std::fs::read(fixture("queries/tshirt.jpg")).unwrap();
    let answer = cold.search_photo(&photo, &Default::default()).unwrap();
    assert!(!answer.hits.is_empty() && !answer.predicted.is_empty());
    assert!(cold.warmed());
    let held = open(Residency::Snapshot);
    assert_eq!(held.items_in_memory(), 12);
    assert!(held.warmed());
}
