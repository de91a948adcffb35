//! Every garment of a photo through the API: `all_garments=true` on `/api/search` and
//! `/api/search/batch`, on the outfit fixture (four sample photos tiled 2x2, all four
//! items in the shared 24-item index).

use super::*;

fn outfit() -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/queries/outfit.jpg"),
    )
    .unwrap()
}

fn ids(results: &Value) -> Vec<String> {
    results.as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

const KINDS: [&str; 7] = ["top", "outerwear", "bottom", "dress", "shoes", "bag", "hat"];

#[tokio::test]
async fn an_outfit_gives_a_block_per_garment_with_its_box_and_results() {
    let fields: &[(&str, &[u8])] = &[("image", &outfit()), ("all_garments", b"true")];
    let (s, v) = search(router(), fields).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let garments = v["garments"].as_array().unwrap();
    assert!(garments.len() >= 2, "an outfit of four garments: {v}");
    for g in garments {
        assert!(KINDS.contains(&g["kind"].as_str().unwrap()), "{g}");
        let c = g["confidence"].as_f64().unwrap();
        assert!(c > 0.0 && c <= 1.0, "{g}");
        let b = &g["box"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| b[k].as_u64().unwrap());
        assert!(w > 0 && h > 0 && x + w <= 600 && y + h <= 600, "inside the 600x600 photo: {g}");
        let n = g["results"].as_array().unwrap().len();
        assert!((1..=5).contains(&n), "{g}");
    }
    // The top level is the photo's own search, as without the flag.
    let (_, plain) = search(router(), &[("image", &outfit())]).await;
    assert!(plain.get("garments").is_none(), "{plain}");
    assert_eq!(ids(&v["results"]), ids(&plain["results"]));
}

#[tokio::test]
async fn the_garments_of_an_outfit_find_their_own_items() {
    // Tiles of 300 px: the T-shirt 1001 top left, the trousers 1003 top right, the shoes
    // 1006 bottom left, the cap 1018 bottom right.
    let tiles = [("1001", 0, 0), ("1003", 300, 0), ("1006", 0, 300), ("1018", 300, 300)];
    let fields: &[(&str, &[u8])] = &[("image", &outfit()), ("all_garments", b"true")];
    let (_, v) = search(router(), fields).await;
    let mut found = Vec::new();
    for g in v["garments"].as_array().unwrap() {
        let b = &g["box"];
        let cx = b["x"].as_u64().unwrap() + b["w"].as_u64().unwrap() / 2;
        let cy = b["y"].as_u64().unwrap() + b["h"].as_u64().unwrap() / 2;
        let inside =
            |&&(_, x, y): &&(&str, u64, u64)| cx >= x && cx < x + 300 && cy >= y && cy < y + 300;
        let (item, ..) = tiles.iter().find(inside).unwrap();
        if ids(&g["results"]).contains(&item.to_string()) {
            found.push(*item);
        }
    }
    found.sort_unstable();
    found.dedup();
    assert_eq!(found.len(), 4, "garments finding their own tile's item: {found:?}\n{v}");
}

#[tokio::test]
async fn a_crop_with_all_garments_is_refused() {
    let fields: &[(&str, &[u8])] =
        &[("image", &outfit()), ("all_garments", b"true"), ("crop", b"0,0,300,300")];
    let (s, v) = search(router(), fields).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_of(&v).contains("crop"), "{v}");
    let (s, v) = search(router(), &[("image", &outfit()), ("all_garments", b"maybe")]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_of(&v).contains("all_garments"), "{v}");
}

#[tokio::test]
async fn a_batch_takes_the_flag_for_its_photos() {
    let fields: &[(&str, &[u8])] = &[("image", &outfit()), ("id", b"1003"), ("all_garments", b"1")];
    let (s, _, b) = send(router(), form("/api/search/batch", fields, Some("outfit.jpg"))).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let batches = v["batches"].as_array().unwrap();
    assert!(batches[0]["garments"].as_array().is_some_and(|g| g.len() >= 2), "{v}");
    assert!(batches[1].get("garments").is_none(), "an item is searched as an item: {v}");
    assert!(!ids(&batches[1]["results"]).is_empty(), "{v}");
}
