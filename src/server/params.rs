//! Reading request parameters: query strings and form fields, each checked with a
//! message naming the parameter.

use super::*;

/// Query-string parameters; `filter` may repeat.
#[derive(Debug, Default)]
pub(super) struct Params {
    pub(super) k: Option<String>,
    pub(super) page: Option<String>,
    pub(super) per_page: Option<String>,
    pub(super) filters: Vec<String>,
    pub(super) colour: Option<String>,
    pub(super) min_score: Option<String>,
    pub(super) collapse: Option<String>,
    pub(super) trained: Option<String>,
    pub(super) category: Option<String>,
}

pub(super) fn params(raw: Option<String>) -> Result<Params, AppError> {
    let mut p = Params::default();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "k" => p.k = Some(value.into_owned()),
            "page" => p.page = Some(value.into_owned()),
            "per_page" => p.per_page = Some(value.into_owned()),
            "filter" => p.filters.push(value.into_owned()),
            "colour" => p.colour = Some(value.into_owned()),
            "min_score" => p.min_score = Some(value.into_owned()),
            "collapse" => p.collapse = Some(value.into_owned()),
            "trained" => p.trained = Some(value.into_owned()),
            "category" => p.category = Some(value.into_owned()),
            other => {
                return Err(AppError::BadRequest(format!("unknown query parameter '{other}'")));
            }
        }
    }
    Ok(p)
}

pub(super) fn number(
    name: &str,
    raw: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, AppError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.trim().parse::<usize>() {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(AppError::BadRequest(format!(
            "{name} must be a whole number from 1 to {max}, got '{raw}'"
        ))),
    }
}

/// An optional number in `lo..=hi` (`colour`, `min_score`, `collapse`).
pub(super) fn fraction(
    name: &str,
    raw: Option<&str>,
    lo: f32,
    hi: f32,
) -> Result<Option<f32>, AppError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(None) };
    match raw.parse::<f32>() {
        Ok(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
        _ => Err(AppError::BadRequest(format!(
            "{name} must be a number from {lo} to {hi}, got '{raw}'"
        ))),
    }
}

pub(super) const MAX_COLOUR: f32 = crate::ingest::MAX_COLOUR_WEIGHT;

pub(super) fn filter(state: &AppState, specs: &[String]) -> Result<Filter, AppError> {
    Ok(state.engine.filter(specs)?)
}

pub(super) const MAX_CATEGORY: f32 = crate::category::MAX_SHARE;

/// The `locate` field: `auto` (or empty), `on`, `off`.
pub(super) fn locate_flag(text: &str) -> Result<Option<bool>, AppError> {
    match text {
        "" | "auto" => Ok(None),
        "on" | "true" => Ok(Some(true)),
        "off" | "false" => Ok(Some(false)),
        other => {
            Err(AppError::BadRequest(format!("locate must be auto, on or off, got '{other}'")))
        }
    }
}

pub(super) fn too_large(limit: usize) -> AppError {
    AppError::TooLarge(format!("the upload is over the {} MB limit", limit / (1024 * 1024)))
}

/// A multipart upload, or a 400 saying why the request is not one.
pub(super) fn opened(
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Multipart, AppError> {
    form.map_err(|e| {
        AppError::BadRequest(format!("expected a multipart/form-data upload: {}", e.body_text()))
    })
}

/// One field of a multipart upload, read whole.
pub(super) struct Part {
    pub(super) name: String,
    pub(super) file_name: Option<String>,
    pub(super) data: Bytes,
}

impl Part {
    /// The field as trimmed text.
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).trim().to_string()
    }
}

/// The next field of `form` (`None` after the last), over `limit` a 413.
pub(super) async fn next_part(
    form: &mut Multipart,
    limit: usize,
) -> Result<Option<Part>, AppError> {
    let Some(field) = form.next_field().await.map_err(|e| multipart_error(&e, limit))? else {
        return Ok(None);
    };
    let name = field.name().unwrap_or("").to_string();
    let file_name = field.file_name().map(str::to_string);
    let data = field.bytes().await.map_err(|e| multipart_error(&e, limit))?;
    Ok(Some(Part { name, file_name, data }))
}

pub(super) fn multipart_error(
    e: &axum::extract::multipart::MultipartError,
    limit: usize,
) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        AppError::BadRequest(format!("malformed upload: {}", e.body_text()))
    }
}

/// An item id from the URL's path; a path that does not decode (e.g. `%ff`, not UTF-8)
/// is a 400 with a JSON message, like every other bad request.
pub(super) struct Id(pub(super) String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Id {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match UrlPath::<String>::from_request_parts(parts, state).await {
            Ok(UrlPath(id)) => Ok(Id(id)),
            Err(e) => {
                Err(AppError::BadRequest(format!("bad item id in the URL: {}", e.body_text())))
            }
        }
    }
}
