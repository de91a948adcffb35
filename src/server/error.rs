//! HTTP errors: a 4xx with a message that names the problem for bad input, a generic 500
//! (details to the log only) for everything else.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::embed::EmbedError;
use crate::error::Error;
use crate::preprocess::PreprocessError;

/// The error body of every failed request.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
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
    /// The request did not arrive in time.
    Timeout(String),
    /// The URL is longer than the server reads.
    UriTooLong(String),
    Internal(String),
}

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
            Error::UnknownId(_) => AppError::NotFound(e.to_string()),
            Error::BadItem { .. } | Error::UnknownColumn { .. } | Error::BadFilter(_) => {
                AppError::BadRequest(e.to_string())
            }
            Error::Image(p) | Error::Embed(EmbedError::Preprocess(p)) => image(p),
            _ if e.is_user_error() => AppError::BadRequest(e.to_string()),
            _ => AppError::Internal(format!("{e:#}")),
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
            AppError::Busy => {
                let body = ErrorBody { error: "the server is busy; try again in a moment".into() };
                let mut res = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return res;
            }
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal server error".to_string())
            }
        };
        (status, Json(ErrorBody { error: msg })).into_response()
    }
}
