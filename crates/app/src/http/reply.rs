//! Answers that several features give in the same shape: a resource created (or accepted) at a
//! `Location`, JSON that is already serialised (a cached copy), and the `If-None-Match` check
//! of a conditional GET.

use axum::{
    Json,
    body::Bytes,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::error::ApiError;

/// `status` (201 Created, 202 Accepted) with `Location: location` and `body` as JSON.
pub fn located<T: Serialize>(status: StatusCode, location: &str, body: T) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(location).map_err(anyhow::Error::from)?;
    Ok((status, [(header::LOCATION, location)], Json(body)).into_response())
}

/// A JSON answer of bytes that are already JSON.
pub fn json_bytes(json: Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json,
    )
        .into_response()
}

/// Whether the request's `If-None-Match` names `etag` (or is `*`), so a 304 may answer it.
/// Weak comparison (RFC 9110 §13.1.2): a proxy that compressed the response on the way may
/// have turned the ETag into a weak one. Several header lines are one list.
pub fn etag_matches(request_headers: &HeaderMap, etag: &str) -> bool {
    header_items(request_headers, header::IF_NONE_MATCH, ',')
        .map(|tag| tag.trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// The items of a list-valued request header (`If-None-Match` split at `,`, `Cookie` at `;`),
/// trimmed, across all its lines; a line that is not text is skipped.
pub fn header_items(
    headers: &HeaderMap,
    name: header::HeaderName,
    separator: char,
) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(move |value| value.split(separator))
        .map(str::trim)
}
