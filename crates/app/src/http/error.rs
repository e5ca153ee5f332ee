//! One error type for the HTTP boundary, rendered as RFC 9457 `application/problem+json`.
//!
//! Each variant has a stable `type` URI (`/problems/<slug>`, listed in the README) that
//! clients can switch on. 5xx bodies are opaque: the cause is logged with the request id, and
//! the response carries only that id so support can find the log line.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::repo::StoreError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request id (also in the `X-Request-Id` header), for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field messages of a validation problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name in the request.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// `field` is invalid because `message`.
    pub fn new(field: &str, message: impl ToString) -> Self {
        Self {
            field: field.to_owned(),
            message: message.to_string(),
        }
    }

    /// `parsed`'s value, or `None` with its error recorded against `field` in `errors`: every
    /// invalid field of a request is reported at once.
    pub fn collect<T>(field: &str, parsed: Result<T, impl ToString>, errors: &mut Vec<Self>) -> Option<T> {
        parsed.map_err(|error| errors.push(Self::new(field, error))).ok()
    }
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (bad JSON, wrong types, missing fields, bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid fields.
    #[error("invalid fields")]
    Validation(Vec<FieldError>),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such resource (or not one the caller may know about).
    #[error("{0}")]
    NotFound(&'static str),
    /// The request conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// The body is over the size limit (`body_limit_bytes`).
    #[error("the request body is over the size limit")]
    PayloadTooLarge,
    /// The body is not of a supported media type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed but impossible to process (an image too large in pixels, an unreadable
    /// header).
    #[error("{0}")]
    Unprocessable(String),
    /// Too many requests; retry after this many seconds.
    #[error("too many requests")]
    RateLimited(u64),
    /// A backend is down or saturated; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// Outgrow itself is at capacity for this kind of request (a full queue, a shard move);
    /// the detail says which, and `Retry-After` when to come back.
    #[error("{0}")]
    Busy(&'static str),
    /// A bug or an unexpected failure; the cause is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A single invalid field.
    pub fn invalid(field: &str, message: impl ToString) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}

/// The `type` slug and title for a status, shared with responses produced outside handlers
/// (timeouts, body limits, unknown routes, panics).
pub fn kind_of(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad-request", "Bad request"),
        401 => ("unauthorized", "Authentication required"),
        403 => ("forbidden", "Forbidden"),
        404 => ("not-found", "Not found"),
        405 => ("method-not-allowed", "Method not allowed"),
        408 => ("timeout", "Request timed out"),
        409 => ("conflict", "Conflict"),
        413 => ("payload-too-large", "Payload too large"),
        415 => ("unsupported-media-type", "Unsupported media type"),
        422 => ("unprocessable", "Unprocessable content"),
        429 => ("rate-limited", "Too many requests"),
        503 => ("unavailable", "Service unavailable"),
        500..=599 => ("internal", "Internal server error"),
        _ => ("error", "Error"),
    }
}

impl Problem {
    /// A problem for `status` with an optional detail, quoting the current request's id.
    pub fn new(status: StatusCode, detail: Option<String>) -> Self {
        let (slug, title) = kind_of(status);
        Self {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            request_id: super::request_id::current_request_id(),
            errors: Vec::new(),
        }
    }

    /// Renders with the problem media type.
    pub fn into_response_with(self, status: StatusCode) -> Response {
        let mut response = (status, Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut problem = Problem::new(status, None);
        match &self {
            Self::Validation(errors) => {
                problem.kind = "/problems/validation".into();
                problem.title = "Invalid request".into();
                problem.detail = Some(match errors.len() {
                    1 => format!("{}: {}", errors[0].field, errors[0].message),
                    n => format!("{n} fields are invalid"),
                });
                problem.errors = errors.clone();
            }
            Self::Internal(error) => {
                // Logged within the request's log context: the line carries the request id.
                tracing::error!(error = format!("{error:#}"), "request failed");
            }
            Self::Unavailable(reason) => {
                tracing::warn!(reason, "backend unavailable");
                problem.detail = Some("a backend is temporarily unavailable; retry shortly".into());
            }
            other => problem.detail = Some(other.to_string()),
        }
        let mut response = problem.into_response_with(status);
        let headers = response.headers_mut();
        match &self {
            Self::RateLimited(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
            }
            Self::Unavailable(_) | Self::Busy(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Self::Validation(vec![error])
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            StoreError::Unavailable(cause) => Self::Unavailable(cause.clone()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<outgrow_platform::cache::LoadError<StoreError>> for ApiError {
    fn from(error: outgrow_platform::cache::LoadError<StoreError>) -> Self {
        // The loader's error is shared by every caller that waited on the same load.
        match &*error.0 {
            StoreError::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            StoreError::Unavailable(cause) => Self::Unavailable(cause.to_string()),
            other => Self::Internal(anyhow::anyhow!("{other}")),
        }
    }
}
