//! Request ids: the `X-Request-Id` header, which incoming ids are kept, fresh ones, and the id
//! of the request being served.
//!
//! A leaf on purpose: the middleware stamps the id and the error type quotes it in problem
//! bodies, and neither may depend on the other (that was an import cycle through `authn`).

use axum::{body::Bytes, extract::Request, http::HeaderName};

/// The request id header, accepted from clients and proxies and echoed on every response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An incoming id is kept when it is short, printable ASCII (it ends up in logs and headers);
/// anything else is replaced by a fresh UUID.
pub fn incoming_request_id(request: &Request) -> Option<Bytes> {
    let value = request.headers().get(&X_REQUEST_ID)?;
    let acceptable = !value.is_empty()
        && value.len() <= 128
        && value
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b));
    acceptable.then(|| Bytes::copy_from_slice(value.as_bytes()))
}

/// A fresh request id (a random UUID).
pub fn new_request_id() -> Bytes {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    Bytes::copy_from_slice(id.as_bytes())
}

/// The id of the request being served, if any (for problem bodies).
pub fn current_request_id() -> Option<String> {
    outgrow_platform::telemetry::REQUEST
        .try_with(|request| request.id().to_owned())
        .ok()
}
