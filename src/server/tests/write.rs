//! Live writes: each test writes to an index of its own.

use super::*;

#[tokio::test]
async fn writes_need_a_configured_token() {
    let img = photo("1030");
    // No token configured: both write endpoints are off, whatever the request carries.
    let (_dir, off) = writable(None);
    for req in [add(&[("image", &img), ("id", b"x")], None), delete("1001")] {
        let (s, _, v) = call(&off, req).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        assert!(error_of(&v).contains("--admin-token or LOOKALIKE_ADMIN_TOKEN"), "{v}");
    }
    let blank = ServeOptions { admin_token: Some("  ".into()), ..ServeOptions::default() };
    let blank = Arc::new(AppState::new(off.engine.clone(), &blank));
    assert_eq!(call(&blank, delete("1001")).await.0, StatusCode::FORBIDDEN, "a blank token");

    // A token configured: a missing, wrong or non-bearer credential gets 401.
    let (_dir, on) = writable(Some(TOKEN));
    let bad_auth =
        [None, Some("Bearer wrong"), Some("Bearer "), Some(TOKEN), Some("Basic czNjcmV0")];
    for auth in bad_auth {
        for mut req in [form("/api/items", &[("image", &img), ("id", b"x")], None), {
            Request::delete("/api/items/1001").body(Body::empty()).unwrap()
        }] {
            if let Some(a) = auth {
                req.headers_mut().insert("authorization", a.parse().unwrap());
            }
            let (s, h, v) = call(&on, req).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{auth:?}: {v}");
            assert!(h["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
            assert!(!error_of(&v).is_empty());
        }
    }
    // Nothing was written by any refused request.
    for state in [&off, &on] {
        assert_eq!(get_on(state, "/api/stats").await.1["count"], 8);
        assert_eq!(get_on(state, "/api/items/1001").await.0, StatusCode::OK);
        assert_eq!(get_on(state, "/api/items/x").await.0, StatusCode::NOT_FOUND);
    }
    // The scheme is case-insensitive; the right token passes (and the id is unknown).
    let req = Request::delete("/api/items/nope")
        .header("authorization", format!("bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&on, req).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_added_item_is_found_at_once() {
    let (_dir, state) = writable(Some(TOKEN));
    let img = photo("1030");
    let meta = br#"{"articleType": "Jeans", "masterCategory": "Apparel"}"#;
    let (s, h, v) = call(
        &state,
        add(&[("image", &img), ("id", b"new 1"), ("metadata", meta), ("gender", b"Men")], None),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(h["location"], "/api/items/new%201");
    assert_eq!(v["added"], serde_json::json!(["new 1"]));
    assert_eq!(v["replaced"], serde_json::json!([]));
    assert_eq!(v["total_items"], 9);

    let (s, v) = get_on(&state, "/api/items/new%201").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["metadata"]["articleType"], "Jeans");
    assert_eq!(v["metadata"]["gender"], "Men");
    assert_eq!(v["image"], "/images/new%201");
    assert_eq!(search_on(&state, &img).await[0], "new 1");
    let (s, h, b) =
        send(app(state.clone()), Request::get("/images/new%201").body(Body::empty()).unwrap())
            .await;
    assert_eq!((s, h["content-type"].to_str().unwrap()), (StatusCode::OK, "image/jpeg"));
    assert_eq!(b, img);
    let (s, _, _) =
        send(app(state.clone()), Request::get("/thumbs/new%201").body(Body::empty()).unwrap())
            .await;
    assert_eq!(s, StatusCode::OK);
    // Facets and statistics follow the write.
    let (_, v) = get_on(&state, "/api/stats").await;
    assert_eq!(v["count"], 9);
    let at = v["columns"].as_array().unwrap().iter().find(|c| c["name"] == "articleType").unwrap();
    assert!(at["values"].as_array().unwrap().iter().any(|x| x["value"] == "Jeans"), "{at}");
    let (_, v) = get_on(&state, "/api/items?filter=articleType%3DJeans").await;
    assert_eq!(v["total"], 1);

    // The id defaults to the uploaded file's name; the same id again replaces (200).
    let other = photo("1031");
    let (s, _, v) = call(&state, add(&[("image", &other)], Some("shots/new 1.jpg"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["replaced"], serde_json::json!(["new 1"]));
    assert_eq!(v["total_items"], 9);
    assert_eq!(search_on(&state, &other).await[0], "new 1");
    assert!(get_on(&state, "/api/items/new%201").await.1["metadata"]["gender"].is_null());
    let (_, _, b) =
        send(app(state.clone()), Request::get("/images/new%201").body(Body::empty()).unwrap())
            .await;
    assert_eq!(b, other);
    assert_eq!(added_photos(&state), 1, "the replaced photo's file is gone");
    let (_, v) = get_on(&state, "/api/items?filter=articleType%3DJeans").await;
    assert_eq!(v["total"], 0);

    // Removing an added item removes its photo file too.
    assert_eq!(call(&state, delete("new%201")).await.0, StatusCode::OK);
    assert_eq!(added_photos(&state), 0);
}

#[tokio::test]
async fn bad_uploads_add_nothing() {
    let (_dir, state) = writable(Some(TOKEN));
    let img = photo("1030");
    type Case<'a> = (Vec<(&'a str, &'a [u8])>, Option<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("image", b"this is text, not a photo"), ("id", b"t")], None, "not an image"),
        (vec![("image", &img[..img.len() / 3]), ("id", b"t")], None, "corrupt or truncated"),
        (vec![("image", b""), ("id", b"t")], None, "empty"),
        (vec![("id", b"t")], None, "missing the 'image' field"),
        (vec![("image", &img)], None, "missing the item id"),
        (vec![("image", &img), ("id", b"  ")], Some("shoe.jpg"), "the 'id' field is empty"),
        (vec![("image", &img), ("id", b"a/b")], None, "slash"),
        // Before: accepted (201), then unreachable: clients drop a URL's dot segments.
        (vec![("image", &img), ("id", b".")], None, "'.' or '..'"),
        (vec![("image", &img), ("id", b"..")], None, "'.' or '..'"),
        // Before: accepted, an id that reads as another or as nothing at all.
        (vec![("image", &img), ("id", "evil\u{202E}gpj".as_bytes())], None, "invisible"),
        (vec![("image", &img), ("id", "a\u{200B}b".as_bytes())], None, "invisible"),
        (vec![("image", &img), ("id", "\u{FEFF}t".as_bytes())], None, "invisible"),
        (
            vec![("image", &img), ("id", b"t"), ("colour", b"red")],
            None,
            "unknown form field 'colour'",
        ),
        (
            vec![("image", &img), ("id", b"t"), ("metadata", br#"{"colour": "red"}"#)],
            None,
            "unknown metadata column 'colour'",
        ),
        (vec![("image", &img), ("id", b"t"), ("metadata", b"[1, 2]")], None, "JSON object"),
        (
            vec![("image", &img), ("id", b"t"), ("metadata", br#"{"gender": null}"#)],
            None,
            "must be a string",
        ),
        (
            vec![("image", &img), ("gender", b"Men"), ("metadata", br#"{"gender": "Women"}"#)],
            Some("t.jpg"),
            "given twice",
        ),
        (vec![("image", &img), ("image", &img)], Some("t.jpg"), "only one 'image'"),
    ];
    for (fields, file_name, msg) in cases {
        let (s, _, v) = call(&state, add(&fields, file_name)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{msg}: {v}");
        assert!(error_of(&v).contains(msg), "expected '{msg}' in {v}");
    }
    let req = authed(Request::post("/api/items").body(Body::from("x")).unwrap(), TOKEN);
    assert_eq!(call(&state, req).await.0, StatusCode::BAD_REQUEST);
    // The upload limit of /api/search holds here too.
    let small = ServeOptions {
        max_upload: 2000,
        admin_token: Some(TOKEN.into()),
        ..ServeOptions::default()
    };
    let small = Arc::new(AppState::new(state.engine.clone(), &small));
    let (s, _, v) = call(&small, add(&[("image", &img), ("id", b"t")], None)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    assert_eq!(get_on(&state, "/api/stats").await.1["count"], 8);
    assert_eq!(get_on(&state, "/api/items/t").await.0, StatusCode::NOT_FOUND);
    assert_eq!(added_photos(&state), 0);
}

#[tokio::test]
async fn a_removed_item_is_gone_at_once() {
    let (_dir, state) = writable(Some(TOKEN));
    let img = photo("1003");
    assert_eq!(search_on(&state, &img).await[0], "1003");
    let (s, _, v) = call(&state, delete("1003")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["removed"], serde_json::json!(["1003"]));
    assert_eq!(v["total_items"], 7);
    assert_eq!(get_on(&state, "/api/items/1003").await.0, StatusCode::NOT_FOUND);
    assert!(!search_on(&state, &img).await.contains(&"1003".to_string()));
    assert_eq!(get_on(&state, "/api/items/1003/similar").await.0, StatusCode::NOT_FOUND);
    let (s, _, _) =
        send(app(state.clone()), Request::get("/images/1003").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = get_on(&state, "/api/stats").await;
    assert_eq!(v["count"], 7);
    let (_, v) = get_on(&state, "/api/items?per_page=100").await;
    assert_eq!(v["total"], 7);
    // The catalogue photo itself is left alone.
    let Some(super::super::images::PhotoRoot::Folder(dir)) = &state.catalog else {
        panic!("the catalogue is a folder")
    };
    assert!(dir.join("1003.jpg").exists());

    for id in ["1003", "nope"] {
        let (s, _, v) = call(&state, delete(id)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert!(error_of(&v).contains(&format!("unknown id '{id}'")), "{v}");
    }
    assert_eq!(get_on(&state, "/api/stats").await.1["count"], 7);
}

#[tokio::test]
async fn an_id_in_either_unicode_form_names_one_item() {
    // Before: `café` precomposed (NFC) and decomposed (NFD) were stored as two items.
    let (_dir, state) = writable(Some(TOKEN));
    let (nfc, nfd) = ("caf\u{e9}", "cafe\u{301}");
    let img = photo("1030");
    let (s, h, v) = call(&state, add(&[("image", &img), ("id", nfd.as_bytes())], None)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["added"][0], nfc, "stored in NFC: {v}");
    assert_eq!(h["location"], "/api/items/caf%C3%A9");
    let (s, _, v) = call(&state, add(&[("image", &img), ("id", nfc.as_bytes())], None)).await;
    assert_eq!(s, StatusCode::OK, "the same item, replaced: {v}");
    assert_eq!(get_on(&state, "/api/stats").await.1["count"], 9);
    for uri in ["/api/items/caf%C3%A9", "/api/items/cafe%CC%81", "/api/items/cafe%CC%81/similar"] {
        let (s, v) = get_on(&state, uri).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {v}");
    }
    let (s, _, v) = call(&state, delete("cafe%CC%81")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["removed"][0], nfc, "{v}");
    assert_eq!(get_on(&state, "/api/items/caf%C3%A9").await.0, StatusCode::NOT_FOUND);
}
