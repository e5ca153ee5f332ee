//! Answers that several features give in the same shape: a resource created (or accepted) at a
//! `Location`, and JSON that is already serialised (a cached copy).

use axum::{
    Json,
    body::Bytes,
    http::{HeaderValue, StatusCode, header},
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
