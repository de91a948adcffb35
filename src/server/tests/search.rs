//! Searching by photo and by item: results, predictions, filters, crops, bad input, limits,
//! the trained parameter.

use super::*;

#[tokio::test]
async fn search_by_photo_finds_it_first() {
    // By similarity alone (category 0) the photo itself scores 1.
    let fields: &[(&str, &[u8])] =
        &[("image", &photo("1003")), ("k", b"3"), ("resize", b"pad"), ("category", b"0")];
    let (s, v) = search(router(), fields).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["id"], "1003");
    assert!(results[0]["score"].as_f64().unwrap() > 0.999);
    assert_eq!(results[0]["image"], "/images/1003");
    assert_eq!(results[0]["thumbnail"], "/thumbs/1003");
    assert_eq!(results[0]["metadata"]["articleType"], "Trousers");
    assert!(v["took_ms"].as_f64().unwrap() > 0.0);
    // By default a snapshot is centre-cropped, unlike the padded catalogue: still first.
    let (_, v) = search(router(), &[("image", &photo("1003"))]).await;
    assert_eq!(v["results"].as_array().unwrap().len(), 5, "k defaults to 5");
    assert_eq!(v["results"][0]["id"], "1003");
}

#[tokio::test]
async fn search_says_what_the_photo_looks_like_and_where_the_garment_is() {
    // A trouser snapshot (sample item 1003): the model names its kind, and the search
    // ranks by it unless told not to.
    let (s, v) = search(router(), &[("image", &photo("1003")), ("k", b"5")]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let predicted = v["predicted"].as_array().unwrap();
    assert_eq!(predicted[0]["column"], "articleType", "{v}");
    assert_eq!(predicted[0]["value"], "Trousers", "{v}");
    assert_eq!(predicted[0]["source"], "both");
    let p = predicted[0]["probability"].as_f64().unwrap();
    assert!(p > 0.5 && p <= 1.0, "{v}");
    // The garment square, when found, lies inside the photo the server decoded.
    let (w, h) = image::load_from_memory(&photo("1003")).unwrap().to_rgb8().dimensions();
    if let Some(g) = v.get("garment_box") {
        let (x, y, gw, gh) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + gw <= u64::from(w) && y + gh <= u64::from(h) && gw == gh, "{g}");
    }
    let (_, off) = search(router(), &[("image", &photo("1003")), ("locate", b"off")]).await;
    assert!(off.get("garment_box").is_none(), "{off}");
    // The stats name what the model predicts.
    let (_, stats) = get_json("/api/stats").await;
    assert_eq!(stats["predicts"], serde_json::json!(["articleType"]));
    // "More like this" says what the item looks like too.
    let (s, v) = get_json("/api/items/1003/similar?k=3&category=0.5").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["predicted"][0]["value"], "Trousers", "{v}");
}

/// `keep_nearest=false` ranks every place by the blend: five results are the first five of
/// six (whose 6th place is the one the last-place rule fills).
#[tokio::test]
async fn keep_nearest_false_gives_the_blends_own_order() {
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["results"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().into()).collect()
    };
    let mut moved = 0;
    for id in ["1003", "1027", "1061"] {
        let img = photo(id);
        let (s, off) =
            search(router(), &[("image", &img), ("k", b"5"), ("keep_nearest", b"false")]).await;
        assert_eq!(s, StatusCode::OK, "{off}");
        let (_, six) = search(router(), &[("image", &img), ("k", b"6")]).await;
        assert_eq!(ids(&off)[..], ids(&six)[..5], "{id}");
        let (_, five) = search(router(), &[("image", &img), ("k", b"5")]).await;
        moved += usize::from(ids(&five) != ids(&off));
    }
    assert!(moved > 0, "the last-place rule moved no result: keep_nearest was not tested");
}

/// `flip=true` adds the mirrored view: the same photo's results come back, scored by the
/// averaged vector (the photo itself no longer at exactly 1); a bad value is named.
#[tokio::test]
async fn flip_true_searches_with_the_mirrored_view_too() {
    let img = photo("1003");
    let fields = |flip: &'static [u8]| -> Vec<(&'static str, &[u8])> {
        vec![("image", &img), ("k", b"3"), ("resize", b"pad"), ("category", b"0"), ("flip", flip)]
    };
    let (s, plain) = search(router(), &fields(b"false")).await;
    assert_eq!(s, StatusCode::OK, "{plain}");
    let (s, flipped) = search(router(), &fields(b"true")).await;
    assert_eq!(s, StatusCode::OK, "{flipped}");
    assert_eq!(flipped["results"][0]["id"], "1003", "{flipped}");
    let score = |v: &serde_json::Value| v["results"][0]["score"].as_f64().unwrap();
    assert!(score(&plain) > 0.999 && score(&flipped) < score(&plain), "{plain} {flipped}");
    let (s, v) = search(router(), &fields(b"sideways")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("flip"), "{v}");
}

#[tokio::test]
async fn search_with_filter_and_crop() {
    let (s, v) = search(
        router(),
        &[("image", &photo("1003")), ("k", b"4"), ("filter", b"articleType=Tshirts")],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let results = v["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert!(results.iter().all(|r| r["metadata"]["articleType"] == "Tshirts"));
    let (s, v) = search(router(), &[("image", &photo("1003")), ("crop", b"10,10,100,100")]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn search_bad_input_gets_a_named_4xx() {
    let img = photo("1000");
    type Case<'a> = (Vec<(&'a str, &'a [u8])>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("k", b"5")], StatusCode::BAD_REQUEST, "missing the 'image' field"),
        (vec![("image", b"")], StatusCode::BAD_REQUEST, "empty"),
        (
            vec![("image", b"this is text, not a photo")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not an image",
        ),
        (vec![("image", &img[..img.len() / 3])], StatusCode::BAD_REQUEST, "corrupt or truncated"),
        (vec![("image", &img), ("k", b"0")], StatusCode::BAD_REQUEST, "k must be"),
        (vec![("image", &img), ("k", b"51")], StatusCode::BAD_REQUEST, "k must be"),
        (vec![("image", &img), ("k", b"five")], StatusCode::BAD_REQUEST, "k must be"),
        (
            vec![("image", &img), ("filter", b"colour=red")],
            StatusCode::BAD_REQUEST,
            "unknown filter column 'colour'",
        ),
        (vec![("image", &img), ("filter", b"oops")], StatusCode::BAD_REQUEST, "invalid filter"),
        (vec![("image", &img), ("crop", b"1,2")], StatusCode::BAD_REQUEST, "crop"),
        (vec![("image", &img), ("crop", b"5000,0,10,10")], StatusCode::BAD_REQUEST, "outside"),
        (
            vec![("image", &img), ("color", b"red")],
            StatusCode::BAD_REQUEST,
            "unknown form field 'color'",
        ),
        (vec![("image", &img), ("colour", b"red")], StatusCode::BAD_REQUEST, "colour must be"),
        (vec![("image", &img), ("colour", b"9")], StatusCode::BAD_REQUEST, "colour must be"),
        (vec![("image", &img), ("min_score", b"2")], StatusCode::BAD_REQUEST, "min_score must"),
        (vec![("image", &img), ("collapse", b"x")], StatusCode::BAD_REQUEST, "collapse must"),
        (
            vec![("image", &img), ("resize", b"stretch")],
            StatusCode::BAD_REQUEST,
            "unknown resize mode",
        ),
        (vec![("image", &img), ("category", b"1.5")], StatusCode::BAD_REQUEST, "category must"),
        (vec![("image", &img), ("category", b"much")], StatusCode::BAD_REQUEST, "category must"),
        (vec![("image", &img), ("locate", b"maybe")], StatusCode::BAD_REQUEST, "locate must"),
        (
            vec![("image", &img), ("keep_nearest", b"maybe")],
            StatusCode::BAD_REQUEST,
            "keep_nearest must",
        ),
    ];
    for (fields, status, msg) in cases {
        let (s, v) = search(router(), &fields).await;
        assert_eq!(s, status, "{msg}: {v}");
        assert!(error_of(&v).contains(msg), "expected '{msg}' in {v}");
    }
    let (s, _, b) =
        send(router(), Request::post("/api/search").body(Body::from("x")).unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(serde_json::from_slice::<Value>(&b).unwrap()["error"].is_string());
}

#[tokio::test]
async fn uploads_over_the_limit_get_413() {
    let small = app(state_with(ServeOptions { max_upload: 2000, ..ServeOptions::default() }));
    let big = vec![0u8; 200_000];
    let (s, v) = search(small.clone(), &[("image", &big)]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(error_of(&v).contains("limit"), "{v}");
    let (s, v) = search(small, &[("image", &photo("1000"))]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
}

/// A job on the pool that runs until the sender is dropped: once `started`, it holds a
/// thread; otherwise it may sit in the queue.
fn hold(state: &Arc<AppState>) -> (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>) {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    let state = state.clone();
    tokio::spawn(async move {
        let job = move || {
            let _ = started_tx.send(());
            wait.recv().is_ok()
        };
        let _ = state.pool.run(job).await;
    });
    (release, started)
}

/// Holds one of the pool's threads until the sender is dropped.
async fn occupy(state: &Arc<AppState>) -> std::sync::mpsc::Sender<()> {
    let (release, started) = hold(state);
    for _ in 0..500 {
        if started.try_recv().is_ok() {
            return release;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the job did not start");
}

async fn assert_busy(state: &Arc<AppState>, req: Request<Body>) {
    let t0 = std::time::Instant::now();
    let (s, h, b) = send(app(state.clone()), req).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{}", String::from_utf8_lossy(&b));
    assert_eq!(h["retry-after"], "1", "a 503 says when to come back");
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(error_of(&v).contains("busy"), "{v}");
    // Refused at once, not after waiting for a thread.
    assert!(t0.elapsed() < std::time::Duration::from_secs(1), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn a_full_server_answers_busy_at_once_for_every_kind_of_search() {
    let state = state_with(ServeOptions {
        workers: 1,
        queue: 1,
        queue_wait: std::time::Duration::from_secs(30),
        ..ServeOptions::default()
    });
    // The thread and the queue's one place are taken.
    let a = occupy(&state).await;
    let (b, _) = hold(&state);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_busy(&state, multipart(&[("image", &photo("1000"))])).await;
    // Before: searches by id ran on the async threads, beside the overload protection.
    assert_busy(&state, Request::get("/api/items/1001/similar").body(Body::empty()).unwrap()).await;
    let ids: &[(&str, &[u8])] = &[("id", b"1001"), ("id", b"1002")];
    assert_busy(&state, form("/api/search/batch", ids, None)).await;
    let json = Request::post("/api/recommend")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"like": ["1001"]}"#))
        .unwrap();
    assert_busy(&state, json).await;
    assert_busy(&state, form("/api/embed", &[("image", &photo("1000"))], Some("q.jpg"))).await;
    // Liveness does not wait for the pool.
    let (s, _) = get_on(&state, "/healthz").await;
    assert_eq!(s, StatusCode::OK);
    drop((a, b));
    // Once the held jobs are done (the search thread runs at a lower priority, so on a
    // loaded machine that may take a moment), searches are served again.
    let started = std::time::Instant::now();
    let (mut s, mut v) = search(app(state.clone()), &[("image", &photo("1000"))]).await;
    while s == StatusCode::SERVICE_UNAVAILABLE && started.elapsed().as_secs() < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        (s, v) = search(app(state.clone()), &[("image", &photo("1000"))]).await;
    }
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = get_on(&state, "/api/items/1001/similar").await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn a_search_waits_in_the_queue_for_a_thread_that_frees_in_time() {
    let state = state_with(ServeOptions {
        workers: 1,
        queue: 4,
        queue_wait: std::time::Duration::from_secs(30),
        ..ServeOptions::default()
    });
    let held = occupy(&state).await;
    // The thread frees while the search waits: it is answered, not refused.
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        drop(held);
    });
    let (s, v) = search(app(state), &[("image", &photo("1000"))]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    release.await.unwrap();
}

#[tokio::test]
async fn uploads_past_the_byte_budget_get_503_and_give_it_back() {
    // Before: bodies were read whole with no overall limit (96 x 20 MB reached 1.87 GB).
    let jpeg = photo("1000");
    let tight =
        state_with(ServeOptions { memory_budget: jpeg.len() as u64, ..ServeOptions::default() });
    let (s, h, b) = send(app(tight.clone()), multipart(&[("image", &jpeg)])).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{}", String::from_utf8_lossy(&b));
    assert_eq!(h["retry-after"], "1");
    assert!(error_of(&serde_json::from_slice(&b).unwrap()).contains("busy"));
    assert_eq!(tight.budget.used(), 0, "what was held is given back");
    // Room for the body three times over and its decode: searched, all given back.
    let decode = crate::preprocess::decode_cost(&jpeg);
    assert!(decode > 0);
    let enough = state_with(ServeOptions {
        memory_budget: 4 * jpeg.len() as u64 + decode,
        ..ServeOptions::default()
    });
    let (s, v) = search(app(enough.clone()), &[("image", &jpeg)]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(enough.budget.used(), 0);
}

#[tokio::test]
async fn trained_parameter_reorders_with_the_projection_and_is_checked() {
    // The shared index has no projection: asking for one is the caller's mistake.
    let (s, v) = get_json("/api/items/1001/similar?trained=0.5").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("lookalike train"), "{v}");
    // Before: the message named the server's index folder.
    let folder = engine().location().to_string();
    assert!(!v.to_string().contains(&folder), "{v}");
    let (s, _) = get_json("/api/items/1001/similar?trained=2").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(get_json("/api/stats").await.1["trained"], Value::Null);

    // A projection trained on this index's own vectors (labels: two halves of the ids).
    let dir = tempfile::tempdir().unwrap();
    let idx = build_index(dir.path(), 12);
    {
        let engine =
            Engine::open(&crate::location::Location::Folder(idx.to_path_buf()), BackendKind::Auto)
                .unwrap();
        let snapshot = engine.index().compacted();
        let info = engine.info();
        let data = crate::projection::train::TrainData {
            vectors: (0..snapshot.len()).map(|r| snapshot.vector(r)).collect(),
            labels: (0..snapshot.len() as u32).map(|r| r % 2).collect(),
            classes: vec!["a".into(), "b".into()],
            input_dim: info.model.dim,
            label: "half".into(),
            model_hash: info.model_hash.clone(),
            holdout_excluded: true,
        };
        let cfg = crate::projection::train::TrainConfig {
            hidden: 0,
            dim: 16,
            epochs: 5,
            ..Default::default()
        };
        let p = crate::projection::train::fit(&data, &cfg, &mut |_| {}).unwrap();
        engine.store().write_file(crate::projection::PROJECTION_FILE, &p.to_bytes()).unwrap();
    }
    let engine = Arc::new(
        Engine::open(&crate::location::Location::Folder(idx.to_path_buf()), BackendKind::Auto)
            .unwrap(),
    );
    let state = Arc::new(AppState::new(engine, &ServeOptions::default()));
    let (s, stats) = get_on(&state, "/api/stats").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(stats["trained"]["label"], "half");
    assert_eq!(stats["trained"]["classes"], 2);
    let scores = |v: &Value| -> Vec<f64> {
        v["results"].as_array().unwrap().iter().map(|r| r["score"].as_f64().unwrap()).collect()
    };
    let (_, plain) = get_on(&state, "/api/items/1001/similar?k=8&trained=0").await;
    let (_, default) = get_on(&state, "/api/items/1001/similar?k=8").await;
    let (_, full) = get_on(&state, "/api/items/1001/similar?k=8&trained=1").await;
    // The default re-orders catalogue queries with the projection; 0 turns it off.
    assert_ne!(scores(&plain), scores(&default));
    assert_ne!(scores(&default), scores(&full));
    for v in [&plain, &default, &full] {
        let s = scores(v);
        assert_eq!(s.len(), 8);
        assert!(s.windows(2).all(|w| w[0] >= w[1]), "{s:?}");
    }
    // The same candidates, differently ordered (the re-rank depth covers the index).
    let ids = |v: &Value| -> std::collections::BTreeSet<String> {
        v["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().into()).collect()
    };
    let all = |v: &Value| v["results"].as_array().unwrap().len();
    let (_, everything) = get_on(&state, "/api/items/1001/similar?k=11&trained=1").await;
    let (_, everything_plain) = get_on(&state, "/api/items/1001/similar?k=11&trained=0").await;
    assert_eq!(all(&everything), 11);
    assert_eq!(ids(&everything), ids(&everything_plain));
}
