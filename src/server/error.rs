//! HTTP errors: a 4xx with a message that names the problem for bad input, a generic 500
//! (details to the log only) for everything else.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::embed::EmbedError;
use crate::error::Error;
use crate::fetch::FetchError;
use crate::preprocess::PreprocessError;

/// The error body of every failed request.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, fit to show to a person.
    pub error: String,
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
    /// No or a wrong bearer token (answered with `WWW-Authenticate: Bearer`).
    Unauthorized(String),
    /// The operation is switched off on this server.
    Forbidden(String),
    NotFound(String),
    TooLarge(String),
    Unsupported(String),
    Busy,
    /// The index's store (a Milvus server) does not answer: come back later.
    Unavailable,
    /// The request did not arrive in time.
    Timeout(String),
    /// The URL is longer than the server reads.
    UriTooLong(String),
    /// More headers, or more bytes of them, than the server reads.
    HeadersTooLarge(String),
    /// A photo's URL could not be fetched: the remote end failed, not the request.
    Upstream(String),
    Internal(String),
}

impl AppError {
    /// The message a client sees (details of a 500 go to the log only).
    pub fn message(self) -> String {
        match self {
            AppError::BadRequest(m)
            | AppError::Unauthorized(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::TooLarge(m)
            | AppError::Unsupported(m)
            | AppError::Timeout(m)
            | AppError::UriTooLong(m)
            | AppError::HeadersTooLarge(m)
            | AppError::Upstream(m) => m,
            AppError::Busy => BUSY.into(),
            AppError::Unavailable => UNAVAILABLE.into(),
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                INTERNAL.into()
            }
        }
    }
}

pub(super) const BUSY: &str = "the server is busy; try again in a moment";
pub(super) const UNAVAILABLE: &str =
    "the index's store does not answer; try again in a few seconds";
/// Seconds a client is told to wait when the store does not answer.
pub(super) const UNAVAILABLE_RETRY: &str = "5";
const INTERNAL: &str = "internal server error";

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        let image = |p: &PreprocessError| match p {
            PreprocessError::TooLarge { .. }
            | PreprocessError::TooManyPixels { .. }
            | PreprocessError::OverLimits(_) => AppError::TooLarge(p.to_string()),
            PreprocessError::NotAnImage | PreprocessError::Unsupported(_) => {
                AppError::Unsupported(format!("the upload is {p}"))
            }
            other => AppError::BadRequest(format!("cannot use the photo: {other}")),
        };
        match &e {
            Error::UnknownId(_) => AppError::NotFound(crate::error::chain(&e)),
            // Its message names the index's folder, which is the server's business.
            Error::Projection(crate::projection::ProjectionError::Missing { .. }) => {
                AppError::BadRequest(
                    "this index has no trained projection (run `lookalike train` on it first)"
                        .into(),
                )
            }
            Error::BadItem { .. } | Error::UnknownColumn { .. } | Error::BadFilter(_) => {
                AppError::BadRequest(crate::error::chain(&e))
            }
            Error::Image(p) | Error::Embed(EmbedError::Preprocess(p)) => image(p),
            Error::Fetch(f) => match f {
                FetchError::NotAnImage { .. } => AppError::Unsupported(f.to_string()),
                FetchError::TooLarge { .. } => AppError::TooLarge(f.to_string()),
                FetchError::Unreachable { .. } | FetchError::Timeout { .. } => {
                    AppError::Upstream(f.to_string())
                }
                FetchError::OverBudget { .. } => AppError::Busy,
                _ => AppError::BadRequest(f.to_string()),
            },
            // Its message names the store's address, which is the server's business.
            Error::Store(crate::store::StoreError::Remote(_)) => {
                tracing::warn!(error = %crate::error::chain(&e), "the index's store failed");
                AppError::Unavailable
            }
            _ if e.is_user_error() => AppError::BadRequest(crate::error::chain(&e)),
            _ => AppError::Internal(crate::error::chain(&e)),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            AppError::Unauthorized(m) => {
                let mut res =
                    (StatusCode::UNAUTHORIZED, Json(ErrorBody { error: m })).into_response();
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return res;
            }
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            AppError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            AppError::Unsupported(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            AppError::Timeout(m) => (StatusCode::REQUEST_TIMEOUT, m),
            AppError::UriTooLong(m) => (StatusCode::URI_TOO_LONG, m),
            AppError::HeadersTooLarge(m) => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, m),
            AppError::Upstream(m) => (StatusCode::BAD_GATEWAY, m),
            AppError::Busy => {
                let body = ErrorBody { error: BUSY.into() };
                let mut res = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return res;
            }
            AppError::Unavailable => {
                let body = ErrorBody { error: UNAVAILABLE.into() };
                let mut res = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static(UNAVAILABLE_RETRY));
                return res;
            }
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL.to_string())
            }
        };
        (status, Json(ErrorBody { error: msg })).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unanswering_store_is_a_503_that_says_when_to_come_back() {
        let e = Error::Store(crate::store::StoreError::Remote("connection refused".into()));
        let res = AppError::from(e).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], UNAVAILABLE_RETRY);
    }
}
