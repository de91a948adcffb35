//! Likes and dislikes (`/api/recommend`), batches (`/api/search/batch`) and the query
//! vector (`/api/embed`): results, the order of answers, and each bad input.

use super::*;

fn json_post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn recommend(body: &str) -> (StatusCode, Value) {
    let (s, _, b) = send(router(), json_post("/api/recommend", body)).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn ids(v: &Value) -> Vec<String> {
    v["results"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().into()).collect()
}

#[tokio::test]
async fn one_liked_item_recommends_what_similar_finds() {
    let (s, liked) = recommend(r#"{"like": ["1003"], "k": 5}"#).await;
    assert_eq!(s, StatusCode::OK, "{liked}");
    let (s, similar) = get_json("/api/items/1003/similar?k=5").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&liked), ids(&similar));
    assert!(!ids(&liked).contains(&"1003".to_string()));
}

#[tokio::test]
async fn a_dislike_moves_its_lookalikes_down_and_leaves_itself_out() {
    let (_, liked) = recommend(r#"{"like": ["1003"], "k": 8}"#).await;
    let first = ids(&liked);
    let unliked = first[0].clone();
    let (s, v) =
        recommend(&format!(r#"{{"like": ["1003"], "unlike": ["{unliked}"], "k": 8}}"#)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let after = ids(&v);
    assert!(!after.contains(&unliked) && !after.contains(&"1003".to_string()), "{after:?}");
    assert_ne!(after, first[1..].to_vec(), "a dislike should do more than drop its item");
    // Scores of the results that remain fall most for those most like the disliked item.
    let engine = engine();
    let index = engine.index();
    let vec_of = |id: &str| index.vector(index.key_of(id).unwrap()).unwrap().to_vec();
    let u = vec_of(&unliked);
    let closeness = |id: &str| crate::kernel::dot(&vec_of(id), &u);
    let score = |v: &Value, id: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["score"].as_f64().unwrap())
    };
    // Among the results shown both times: the one most like the disliked item loses more
    // score than the one least like it.
    let mut both: Vec<(f32, f64)> = first[1..]
        .iter()
        .filter_map(|id| Some((closeness(id), score(&liked, id)? - score(&v, id)?)))
        .collect();
    assert!(both.len() >= 3, "{after:?} vs {first:?}");
    both.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (least, most) = (both[0], both[both.len() - 1]);
    assert!(most.1 > least.1, "drops by closeness {both:?}");
}

#[tokio::test]
async fn filters_k_and_photos_as_examples() {
    let (s, v) = recommend(
        r#"{"like": ["1003", "1004"], "k": 3, "filters": {"gender": ["Kids", "Women"]}}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let results = v["results"].as_array().unwrap();
    // The one "Kids" item of the 24.
    assert_eq!(results.len(), 1, "{v}");
    assert_eq!(results[0]["metadata"]["gender"], "Kids", "{v}");
    let (_, v) =
        recommend(r#"{"like": ["1003", "1004"], "k": 3, "filters": {"gender": "Unisex"}}"#).await;
    assert_eq!(ids(&v).len(), 3, "{v}");
    assert!(!ids(&v).iter().any(|id| id == "1003" || id == "1004"), "{v}");
    // A photo's vector (from a search that asked for it) likes as the photo's search finds.
    let fields: &[(&str, &[u8])] =
        &[("image", &photo("1005")), ("resize", b"pad"), ("vector", b"true")];
    let (s, found) = search(router(), fields).await;
    assert_eq!(s, StatusCode::OK, "{found}");
    let vector = found["vector"].clone();
    assert_eq!(vector.as_array().unwrap().len(), engine().info().dim);
    let (s, v) = recommend(&format!(r#"{{"like_vectors": [{vector}]}}"#)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), ids(&found));
    // A snapshot is searched by shape alone: its vector says so (no colour part), and
    // liking it searches as the snapshot did.
    let (s, snap) = search(router(), &[("image", &photo("1003")), ("vector", b"true")]).await;
    assert_eq!(s, StatusCode::OK, "{snap}");
    let v: Vec<f64> =
        snap["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let model_dim = engine().info().model.dim;
    assert!(v.len() > model_dim, "the index weighs colour");
    assert!(v[model_dim..].iter().all(|x| *x == 0.0), "a snapshot's colour part is left out");
    let (s, liked) = recommend(&format!(r#"{{"like_vectors": [{}]}}"#, snap["vector"])).await;
    assert_eq!(s, StatusCode::OK, "{liked}");
    assert_eq!(ids(&liked), ids(&snap));
    // The same as a multipart form: a liked photo, a disliked id.
    let (s, _, b) = send(
        router(),
        form(
            "/api/recommend",
            &[("like_image", &photo("1005")), ("unlike", b"1005"), ("k", b"4")],
            None,
        ),
    )
    .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v).len(), 4);
    assert!(!ids(&v).contains(&"1005".to_string()));
}

#[tokio::test]
async fn bad_recommendations_name_the_problem() {
    for (body, status, says) in [
        (r#"{"like": ["no-such-item"]}"#, StatusCode::NOT_FOUND, "unknown id 'no-such-item'"),
        (r#"{"unlike": ["1003"]}"#, StatusCode::BAD_REQUEST, "at least one liked"),
        (r#"{"like": []}"#, StatusCode::BAD_REQUEST, "at least one liked"),
        (r#"{"like": ["1003"], "k": 0}"#, StatusCode::BAD_REQUEST, "k must be"),
        (r#"{"like": ["1003"], "k": 51}"#, StatusCode::BAD_REQUEST, "k must be"),
        (r#"{"like_vectors": [[1.0, 2.0]]}"#, StatusCode::BAD_REQUEST, "finite numbers"),
        (
            r#"{"like": ["1003"], "filters": {"nope": "x"}}"#,
            StatusCode::BAD_REQUEST,
            "unknown filter column",
        ),
        (r#"{"like": ["1003"], "colour": 9}"#, StatusCode::BAD_REQUEST, "colour must be"),
        (
            r#"{"like": ["1003"], "likes": ["1004"]}"#,
            StatusCode::BAD_REQUEST,
            "unknown field `likes`",
        ),
        (r#"{"like": "1003"}"#, StatusCode::BAD_REQUEST, "expected a JSON object"),
        ("not json", StatusCode::BAD_REQUEST, "expected a JSON object"),
    ] {
        let (s, v) = recommend(body).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(error_of(&v).contains(says), "{body}: {v}");
    }
    // Before: any magnitude was taken (a score of 2.47e18 came back).
    let dim = get_json("/api/stats").await.1["dimension"].as_u64().unwrap_or(0) as usize;
    assert!(dim > 0);
    for scale in [1e9f32, 2.0, 0.0] {
        let mut vector = vec![0.0f32; dim];
        vector[0] = scale;
        let (s, v) = recommend(&format!(r#"{{"like_vectors": [{vector:?}]}}"#)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{scale}: {v}");
        assert!(error_of(&v).contains("length near 1"), "{scale}: {v}");
    }
    let too_many: Vec<String> = (0..70).map(|_| "\"1003\"".to_string()).collect();
    let (s, v) = recommend(&format!(r#"{{"like": [{}]}}"#, too_many.join(","))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(error_of(&v).contains("at most 64"), "{v}");
}

#[tokio::test]
async fn a_batch_answers_each_query_in_order_and_one_failure_fails_only_itself() {
    let fields: &[(&str, &[u8])] = &[
        ("image", &photo("1003")),
        ("id", b"1004"),
        ("image", b"not a photo"),
        ("id", b"no-such-item"),
        ("url", b"http://169.254.169.254/"),
        ("k", b"3"),
    ];
    let (s, _, b) = send(router(), form("/api/search/batch", fields, Some("q.jpg"))).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let batches = v["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 5, "{v}");
    let (_, alone) = search(router(), &[("image", &photo("1003")), ("k", b"3")]).await;
    assert_eq!(ids(&batches[0]), ids(&alone));
    let (_, similar) = get_json("/api/items/1004/similar?k=3").await;
    assert_eq!(ids(&batches[1]), ids(&similar));
    assert!(
        error_of(&batches[2]).contains("not an image")
            || error_of(&batches[2]).contains("cannot use"),
        "{v}"
    );
    assert!(error_of(&batches[3]).contains("unknown id 'no-such-item'"), "{v}");
    assert!(error_of(&batches[4]).contains("refused"), "{v}");
    assert!(batches[2].get("results").is_none());
}

#[tokio::test]
async fn empty_oversized_and_badly_optioned_batches_are_refused() {
    let (s, _, b) = send(router(), form("/api/search/batch", &[("k", b"3")], None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&b).contains("the batch is empty"));
    let many: Vec<(&str, &[u8])> = (0..=MAX_BATCH).map(|_| ("id", b"1003".as_slice())).collect();
    let (s, _, b) = send(router(), form("/api/search/batch", &many, None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&b).contains("at most 32"), "{}", String::from_utf8_lossy(&b));
    let (s, _, b) =
        send(router(), form("/api/search/batch", &[("id", b"1003"), ("k", b"0")], None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&b).contains("k must be"));
    let (s, _, b) = send(router(), form("/api/search/batch", &[("like", b"1003")], None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&b).contains("'like' is not taken here"));
}

#[tokio::test]
async fn embed_gives_the_vector_the_search_compares() {
    // Squared as the catalogue was (padded, whole): the vector the index holds.
    let fields: &[(&str, &[u8])] =
        &[("image", &photo("1003")), ("resize", b"pad"), ("locate", b"off")];
    let (s, _, b) = send(router(), form("/api/embed", fields, Some("q.jpg"))).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    let info = engine().info().clone();
    assert_eq!(v["model"], info.model.name.as_str());
    let vector: Vec<f32> =
        v["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    assert_eq!(v["dimension"], vector.len());
    assert_eq!(vector.len(), info.dim);
    let model_dim = v["model_dimension"].as_u64().unwrap() as usize;
    assert_eq!(model_dim, info.model.dim);
    let norm = crate::kernel::dot(&vector, &vector).sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "a unit vector: {norm}");
    assert_eq!(v["predicted"][0]["value"], "Trousers", "{v}");
    // The vector is the one the index holds for the item's photo.
    let index = engine().index();
    let own = index.vector(index.key_of("1003").unwrap()).unwrap();
    let cos = crate::kernel::dot(&vector, own)
        / (crate::kernel::dot(own, own).sqrt() * crate::kernel::dot(&vector, &vector).sqrt());
    assert!(cos > 0.999, "{cos}");
    for (fields, status) in [
        (vec![("k", b"3".as_slice())], StatusCode::BAD_REQUEST),
        (vec![("image", b"plain text".as_slice())], StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (vec![("id", b"1003".as_slice())], StatusCode::BAD_REQUEST),
    ] {
        let (s, _, b) = send(router(), form("/api/embed", &fields, Some("q.jpg"))).await;
        assert_eq!(s, status, "{}", String::from_utf8_lossy(&b));
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(!error_of(&v).is_empty());
    }
}
