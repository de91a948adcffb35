//! `/metrics` after traffic: the exposition parses, and the counters and histograms moved.

use std::collections::HashMap;

use super::*;

/// Samples of a Prometheus/OpenMetrics text exposition, by `name{labels}`; panics on a
/// line that is neither a comment nor a sample.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    assert!(text.trim_end().ends_with("# EOF"), "no EOF marker");
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap();
            assert!(["HELP", "TYPE", "UNIT", "EOF"].contains(&kind), "bad comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels in: {line}");
        }
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in: {line}"));
        samples.insert(series.to_string(), value);
    }
    samples
}

async fn scrape(state: &Arc<AppState>) -> HashMap<String, f64> {
    let (s, h, b) =
        send(app(state.clone()), Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-type"].to_str().unwrap().contains("text"), "{:?}", h["content-type"]);
    parse(std::str::from_utf8(&b).unwrap())
}

#[tokio::test]
async fn metrics_count_requests_time_stages_and_refusals() {
    let state = state_with(ServeOptions { max_upload: 300 * 1024, ..ServeOptions::default() });
    let before = scrape(&state).await;
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    let ok = r#"lookalike_http_requests_total{route="/api/search",method="POST",status="200"}"#;
    assert_eq!(get(&before, ok), 0.0);
    assert_eq!(get(&before, "lookalike_index_items"), engine().index().len() as f64);

    for _ in 0..2 {
        let (s, v) = search(app(state.clone()), &[("image", &photo("1003"))]).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, _) = search(app(state.clone()), &[("image", b"not a photo")]).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, _) = search(app(state.clone()), &[("image", &vec![0u8; 400 * 1024])]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, _) = get_on(&state, "/api/items/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get_on(&state, "/api/items/1003/similar").await;
    assert_eq!(s, StatusCode::OK);
    let odd = Request::builder().method("BREW").uri("/coffee").body(Body::empty()).unwrap();
    let (s, _, _) = send(app(state.clone()), odd).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let after = scrape(&state).await;
    assert_eq!(get(&after, ok), 2.0);
    assert_eq!(
        get(
            &after,
            r#"lookalike_http_requests_total{route="/api/items/{id}",method="GET",status="404"}"#
        ),
        1.0,
        "routes are counted by pattern, not by id"
    );
    assert_eq!(get(&after, r#"lookalike_uploads_refused_total{reason="not_an_image"}"#), 1.0);
    assert_eq!(get(&after, r#"lookalike_uploads_refused_total{reason="too_large"}"#), 1.0);
    assert_eq!(get(&after, r#"lookalike_errors_total{reason="client"}"#), 4.0);
    assert_eq!(
        get(
            &after,
            r#"lookalike_http_requests_total{route="unmatched",method="other",status="404"}"#
        ),
        1.0,
        "made-up methods and unknown paths share one series"
    );
    // The stages of the two photo searches, each a histogram whose buckets add up.
    for stage in ["decode", "embed", "search", "rerank"] {
        let count =
            get(&after, &format!(r#"lookalike_stage_duration_seconds_count{{stage="{stage}"}}"#));
        assert_eq!(count, 2.0, "{stage}");
        let inf = get(
            &after,
            &format!(r#"lookalike_stage_duration_seconds_bucket{{le="+Inf",stage="{stage}"}}"#),
        )
        .max(get(
            &after,
            &format!(r#"lookalike_stage_duration_seconds_bucket{{stage="{stage}",le="+Inf"}}"#),
        ));
        assert_eq!(inf, count, "{stage}: the +Inf bucket holds every observation");
        let sum =
            get(&after, &format!(r#"lookalike_stage_duration_seconds_sum{{stage="{stage}"}}"#));
        assert!(sum >= 0.0);
    }
    let embed = get(&after, r#"lookalike_stage_duration_seconds_sum{stage="embed"}"#);
    assert!(embed > 0.0, "embedding takes time");
    // Buckets are cumulative: never fewer at a larger bound.
    let mut buckets: Vec<(f64, f64)> = after
        .iter()
        .filter(|(k, _)| {
            k.starts_with("lookalike_stage_duration_seconds_bucket")
                && k.contains(r#"stage="embed""#)
        })
        .map(|(k, v)| {
            let le = k.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
            (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() }, *v)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(buckets.len() > 5);
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    let latency = r#"lookalike_http_request_duration_seconds_count{route="/api/search"}"#;
    assert_eq!(get(&after, latency), 4.0);
}

#[tokio::test]
async fn a_folder_index_is_ready_and_liveness_stays_plain() {
    let (s, v) = get_json("/readyz").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, serde_json::json!({"ready": true}));
    let (s, _, body) = send(router(), Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((s, &body[..]), (StatusCode::OK, &b"ok"[..]));
}
