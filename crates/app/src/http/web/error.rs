//! Errors of pages, rendered as HTML pages (the API's are problem+json): a browser shows them
//! to a person. As in the API, a 5xx page says nothing of its cause, which is logged with the
//! request id.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::{
    layout::{Layout, html_response},
    visitor::NotAdmin,
};
use crate::http::error::ApiError;

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// 404, with a sentence for the visitor.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// 403, with a sentence for the visitor.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 400: a request no form of ours sends (a forged or stale form, a bad link).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 413: a form's body (an upload) over the limit, with a sentence naming it.
    #[error("{0}")]
    TooLarge(String),
    /// 429: too many requests from this visitor; the seconds to wait.
    #[error("rate limited for {0} s")]
    RateLimited(u64),
    /// 503: a backend is unavailable; try again.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500; the cause is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<ApiError> for PageError {
    /// The API's errors, for the pages that call the same code: what a person can act on keeps
    /// its sentence, the rest becomes an opaque 500.
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::NotFound(what) => Self::NotFound(what),
            ApiError::Forbidden(what) => Self::Forbidden(what),
            ApiError::BadRequest(text) => Self::BadRequest(text),
            ApiError::Validation(errors) => Self::BadRequest(
                errors
                    .iter()
                    .map(|error| format!("{}: {}", error.field, error.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ApiError::Conflict(text) | ApiError::Unprocessable(text) => Self::BadRequest(text),
            ApiError::RateLimited(seconds) => Self::RateLimited(seconds),
            ApiError::Unavailable(reason) => Self::Unavailable(reason.to_string()),
            ApiError::Busy(reason) => Self::Unavailable(reason.to_string()),
            other => Self::Internal(anyhow::anyhow!("{other}")),
        }
    }
}

impl IntoResponse for NotAdmin {
    fn into_response(self) -> Response {
        match self {
            Self::SignInFirst(redirect) => redirect.into_response(),
            Self::Forbidden => PageError::Forbidden("This page is for administrators.").into_response(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::NotFound(text) => (StatusCode::NOT_FOUND, (*text).to_owned()),
            Self::Forbidden(text) => (StatusCode::FORBIDDEN, (*text).to_owned()),
            Self::BadRequest(text) => (StatusCode::BAD_REQUEST, text.clone()),
            Self::TooLarge(text) => (StatusCode::PAYLOAD_TOO_LARGE, text.clone()),
            Self::RateLimited(seconds) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many requests: please wait {seconds} s and try again."),
            ),
            Self::Unavailable(reason) => {
                tracing::warn!(reason, "page unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The store is busy or a service is down. Please try again in a moment.".to_owned(),
                )
            }
            Self::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side. It has been logged.".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            layout: Layout::public(status.canonical_reason().unwrap_or("Error"), ""),
            status: status.as_u16(),
            message,
        };
        let html = page
            .render()
            .unwrap_or_else(|_| format!("<!doctype html><title>{status}</title><p>{status}</p>"));
        let mut response = html_response(status, html);
        if let Self::RateLimited(seconds) = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
