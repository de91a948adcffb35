//! Browsing: items, pages, facets, statistics, photos and thumbnails, and no way out of
//! the catalogue folder.

use super::*;

#[tokio::test]
async fn items_similar_and_listing() {
    let (s, v) = get_json("/api/items/1001").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["id"], "1001");
    assert_eq!(v["metadata"]["articleType"], "Tshirts");
    let (s, v) = get_json("/api/items/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(error_of(&v).contains("unknown id 'nope'"));

    let (s, v) = get_json("/api/items/1001/similar?k=3").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|h| h["id"] != "1001"));
    let (s, v) = get_json("/api/items/1001/similar?k=5&filter=articleType%3DTshirts").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["results"].as_array().unwrap().iter().all(|h| h["metadata"]["articleType"] == "Tshirts")
    );
    assert_eq!(get_json("/api/items/nope/similar").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get_json("/api/items/1001/similar?k=100").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(get_json("/api/items/1001/similar?filter=x%3Dy").await.0, StatusCode::BAD_REQUEST);
    for bad in ["colour=-1", "colour=x", "min_score=3", "collapse=1.5"] {
        let (s, v) = get_json(&format!("/api/items/1001/similar?{bad}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    // Colour weight 0 ranks by shape alone; a high one by colour: other rankings.
    let (_, shape) = get_json("/api/items/1001/similar?k=10&colour=0").await;
    let (_, colour) = get_json("/api/items/1001/similar?k=10&colour=4").await;
    let ids = |v: &Value| -> Vec<String> {
        v["results"].as_array().unwrap().iter().map(|h| h["id"].to_string()).collect()
    };
    assert_eq!(ids(&shape).len(), 10);
    assert_ne!(ids(&shape), ids(&colour));
    // A floor no other item reaches, then near-duplicate collapsing (nothing collapses
    // at cosine 1 among distinct photos).
    let (s, v) = get_json("/api/items/1001/similar?k=5&min_score=0.9999").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&v).len(), 0, "{v}");
    let (_, v) = get_json("/api/items/1001/similar?k=5&collapse=1").await;
    assert_eq!(ids(&v).len(), 5);

    let (s, v) = get_json("/api/items?page=2&per_page=10").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["total"].as_u64(), v["page"].as_u64(), v["per_page"].as_u64()),
        (Some(25), Some(2), Some(10))
    );
    assert_eq!(v["items"].as_array().unwrap().len(), 10);
    let (_, v) = get_json("/api/items?page=3&per_page=10").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    let (_, v) = get_json("/api/items?filter=articleType%3DTshirts").await;
    let n = v["total"].as_u64().unwrap();
    assert!(n > 0 && n < 25);
    assert!(
        v["items"].as_array().unwrap().iter().all(|i| i["metadata"]["articleType"] == "Tshirts")
    );
    for bad in [
        "/api/items?per_page=0",
        "/api/items?per_page=101",
        "/api/items?page=x",
        "/api/items?sort=id",
    ] {
        let (s, v) = get_json(bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert!(!error_of(&v).is_empty());
    }
}

#[tokio::test]
async fn facets_and_stats_describe_the_catalogue() {
    let (s, v) = get_json("/api/facets").await;
    assert_eq!(s, StatusCode::OK);
    let cols: Vec<&str> =
        v["columns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(cols.contains(&"articleType"), "{cols:?}");
    assert!(!cols.contains(&"productDisplayName"), "one value per item is no facet");
    let (s, v) = get_json("/api/stats").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["count"], 25);
    assert_eq!(v["dimension"], 256 + crate::colour::BINS);
    assert_eq!(v["colour_weight"], crate::ingest::DEFAULT_COLOUR_WEIGHT);
    // `index` partitioned its 24 photos; the item written to the store behind its back
    // has no cell.
    assert_eq!(v["cells"], crate::index::cells_for(24));
    assert_eq!(v["unplaced"], 1);
    let at = v["columns"].as_array().unwrap().iter().find(|c| c["name"] == "articleType").unwrap();
    let total: u64 =
        at["values"].as_array().unwrap().iter().map(|x| x["count"].as_u64().unwrap()).sum();
    assert_eq!(total + at["missing"].as_u64().unwrap(), 25);
}

#[tokio::test]
async fn photos_and_thumbnails_with_etags() {
    let (s, h, b) = send(router(), Request::get("/images/1002").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(b, photo("1002"));
    let etag = h["etag"].to_str().unwrap().to_string();
    let req =
        Request::get("/images/1002").header("if-none-match", &etag).body(Body::empty()).unwrap();
    assert_eq!(send(router(), req).await.0, StatusCode::NOT_MODIFIED);

    let (s, h, b) = send(router(), Request::get("/thumbs/1002").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "image/jpeg");
    let thumb = image::load_from_memory(&b).unwrap();
    assert!(thumb.width().max(thumb.height()) <= thumbs::SIDE);
    let etag = h["etag"].to_str().unwrap().to_string();
    let req =
        Request::get("/thumbs/1002").header("if-none-match", &etag).body(Body::empty()).unwrap();
    assert_eq!(send(router(), req).await.0, StatusCode::NOT_MODIFIED);

    assert_eq!(
        send(router(), Request::get("/images/nope").body(Body::empty()).unwrap()).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn no_request_reaches_a_file_outside_the_catalogue() {
    // An indexed record pointing outside the catalogue is refused, though the file exists.
    let (s, _, _) = send(router(), Request::get("/images/evil").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = send(router(), Request::get("/thumbs/evil").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for uri in ["/images/..%2F..%2Fetc%2Fpasswd", "/images/%2Fetc%2Fpasswd", "/thumbs/..%2Fsecret"]
    {
        let (s, _, _) = send(router(), Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn a_photo_gone_bad_after_indexing_is_a_404_with_a_message() {
    let (dir, state) = writable(None);
    std::fs::write(dir.path().join("cat/1003.jpg"), b"no longer a photo").unwrap();
    let (s, _, v) = call(&state, Request::get("/thumbs/1003").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(error_of(&v).contains("the photo of '1003' cannot be read"), "{v}");
    // The others still have theirs.
    let (s, _, _) = call(&state, Request::get("/thumbs/1002").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn an_id_that_is_not_utf8_is_a_json_400() {
    for uri in ["/images/%ff", "/thumbs/%ff", "/api/items/%ff", "/api/items/%ff/similar"] {
        let (s, h, b) = send(router(), Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(h["content-type"], "application/json", "{uri}");
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(error_of(&v).contains("bad item id in the URL"), "{uri}: {v}");
    }
}

#[tokio::test]
async fn a_very_long_url_is_a_json_414() {
    let uri = format!("/api/items?filter=gender={}", "x".repeat(20_000));
    let (s, h, b) = send(router(), Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::URI_TOO_LONG);
    assert_eq!(h["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(error_of(&v).contains("at most 8192"), "{v}");
    // A long but reasonable one is still served.
    let uri = format!("/api/items?filter=gender={}", "x".repeat(4_000));
    let (s, _, b) = send(router(), Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
}
