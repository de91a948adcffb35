//! The page's files, embedded in the binary: nothing is fetched from outside.

use axum::extract::Path;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use super::AppError;

const INDEX: &str = include_str!("../../web/index.html");

const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../web/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../../web/api.js")),
    ("crop.js", "text/javascript; charset=utf-8", include_str!("../../web/crop.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../../web/charts.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../web/style.css")),
];

pub(super) async fn index() -> Html<&'static str> {
    Html(INDEX)
}

pub(super) async fn asset(Path(file): Path<String>) -> Result<Response, AppError> {
    let (_, mime, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| AppError::NotFound(format!("no asset '{file}'")))?;
    Ok(([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "no-cache")], *body)
        .into_response())
}
