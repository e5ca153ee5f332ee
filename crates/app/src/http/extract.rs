//! Extractors that turn framework rejections into problem+json and authentication into a type.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{
    authn::{Authentication, Principal},
    error::ApiError,
};

/// `axum::Json` whose rejections are 400/413/415 problems with a useful detail (axum's own
/// answer to a type error is a plain-text 422).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "the body must be JSON, sent with Content-Type: application/json".into(),
        ),
        JsonRejection::JsonSyntaxError(error) => {
            ApiError::BadRequest(format!("the body is not valid JSON: {}", source_text(&error)))
        }
        JsonRejection::JsonDataError(error) => ApiError::BadRequest(format!(
            "the body does not match the expected shape: {}",
            source_text(&error)
        )),
        JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// serde's message (field, line, column) without axum's prefix.
fn source_text(error: &dyn std::error::Error) -> String {
    let mut innermost = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        innermost = cause.to_string();
        source = cause.source();
    }
    innermost
}

/// `axum::extract::Query` with a 400 problem on rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| {
                ApiError::BadRequest(format!("invalid query string: {}", source_text(&rejection)))
            })
    }
}

/// The `id` segment of a path, which must be a UUID; `what` names it in the 400's message
/// (`"an order id"`).
pub fn path_uuid(id: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(id).map_err(|_| ApiError::invalid("id", format!("must be {what} (a UUID)")))
}

/// The signed-in caller; a handler taking it answers 401 to anyone else.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Authentication>() {
            Some(Authentication::Authenticated(principal)) => Ok(principal.clone()),
            Some(Authentication::Rejected(reason)) => Err(ApiError::Unauthorized(reason)),
            Some(Authentication::Anonymous) | None => Err(ApiError::Unauthorized(
                "sign in: send a bearer token or the session cookie",
            )),
        }
    }
}
