//! Extractors that turn framework rejections into problem+json and authentication into a type.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{
    authn::{Authentication, Principal},
    error::ApiError,
};

/// `axum::Json` whose rejections are 400/413/415 problems with a useful detail (axum's own
/// answer to a type error is a plain-text 422), and which refuses U+0000 in any string of the
/// body, for every route at once: PostgreSQL's `text` and `jsonb` cannot hold it, so a NUL
/// that reached a query was a 500 on one backend and accepted on the other.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(request.headers()) {
            return Err(json_rejection_unsupported());
        }
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        if json_holds_nul(&body) {
            return Err(ApiError::BadRequest(NUL_REFUSED.into()));
        }
        match axum::Json::<T>::from_bytes(&body) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// The 400's detail for a request holding U+0000.
pub const NUL_REFUSED: &str =
    "the request holds U+0000 (NUL, `\\u0000` in JSON or `%00` in a URL), which no field accepts";

/// Whether `Content-Type` says JSON (`application/json`, or `application/…+json`), as axum's
/// `Json` decides it.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(mime) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<mime::Mime>().ok())
    else {
        return false;
    };
    mime.type_() == "application"
        && (mime.subtype() == "json" || mime.suffix().is_some_and(|suffix| suffix == "json"))
}

fn json_rejection_unsupported() -> ApiError {
    ApiError::UnsupportedMediaType("the body must be JSON, sent with Content-Type: application/json".into())
}

/// Whether a string of the JSON text `body` holds U+0000, which JSON can only spell as the
/// escape `\u0000` (a raw control character is not JSON at all). Escapes are read in pairs,
/// so the text `\\u0000` (an escaped backslash, then `u0000`) is not one. Outside strings a
/// backslash is not JSON either, and the parser refuses it.
pub fn json_holds_nul(body: &[u8]) -> bool {
    let mut rest = body;
    while let Some(at) = rest.iter().position(|byte| *byte == b'\\') {
        match rest.get(at + 1..) {
            Some([b'u', b'0', b'0', b'0', b'0', ..]) => return true,
            Some([_, tail @ ..]) => rest = tail,
            _ => return false,
        }
    }
    false
}

/// Whether percent-encoded text (a URL's path or query, a form body) spells U+0000 as `%00`.
pub fn percent_encoded_nul(text: &[u8]) -> bool {
    text.windows(3).any(|window| window == b"%00")
}

/// Whether a string or key anywhere in `value` holds U+0000.
pub fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => json_rejection_unsupported(),
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

/// A signed-in administrator. Taken before a handler's body, it refuses everyone else (401, or
/// 403 for a signed-in user) before the body is read or validated, so a non-admin learns
/// nothing from the validation of a body they may not send.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        principal.require_admin("only administrators may do this")?;
        Ok(Self(principal))
    }
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

/// JSON Schema's `integer` is any number without a fractional part, `2.0` as much as `2` (and
/// clients that only have floating point, or schemathesis, send the first). serde's integers
/// take only the second. For the integer fields of JSON request bodies:
/// `#[serde(deserialize_with = "integer::exact")]`, or `integer::optional` with
/// `#[serde(default)]`. A string is still refused, as is `2.5` or a value out of the field's
/// range.
pub mod integer {
    use std::{fmt, marker::PhantomData};

    use serde::{
        Deserialize, Deserializer,
        de::{Error, Unexpected, Visitor},
    };

    /// The largest magnitude an `f64` holds every integer up to (2^53).
    const EXACT_IN_F64: f64 = 9_007_199_254_740_992.0;

    struct Integral<T>(PhantomData<T>);

    impl<T: TryFrom<i64> + TryFrom<u64>> Visitor<'_> for Integral<T> {
        type Value = T;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("an integer in range")
        }

        fn visit_i64<E: Error>(self, value: i64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
        }

        fn visit_u64<E: Error>(self, value: u64) -> Result<T, E> {
            T::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
        }

        fn visit_f64<E: Error>(self, value: f64) -> Result<T, E> {
            if value.fract() == 0.0 && value.abs() <= EXACT_IN_F64 {
                // Exact: an integral value within ±2^53.
                self.visit_i64(value as i64)
            } else {
                Err(E::invalid_value(Unexpected::Float(value), &self))
            }
        }
    }

    /// An integer field.
    pub fn exact<'de, D: Deserializer<'de>, T: TryFrom<i64> + TryFrom<u64>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        deserializer.deserialize_any(Integral(PhantomData))
    }

    /// An optional integer field (`null` or absent: `None`).
    pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<i64> + TryFrom<u64>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        struct Field<T>(T);
        impl<'de, T: TryFrom<i64> + TryFrom<u64>> Deserialize<'de> for Field<T> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                exact(deserializer).map(Field)
            }
        }
        Ok(Option::<Field<T>>::deserialize(deserializer)?.map(|field| field.0))
    }

    #[cfg(test)]
    mod tests {
        use serde::Deserialize;

        #[derive(Debug, Deserialize)]
        struct Line {
            #[serde(deserialize_with = "super::exact")]
            quantity: u32,
            #[serde(default, deserialize_with = "super::optional")]
            stock: Option<i64>,
        }

        fn parse(json: &str) -> Result<Line, String> {
            serde_json::from_str(json).map_err(|error| error.to_string())
        }

        fn accepted(json: &str) -> Line {
            parse(json).unwrap_or_else(|error| panic!("{json}: {error}"))
        }

        #[test]
        fn integral_numbers_are_integers_in_either_spelling() {
            assert_eq!(accepted(r#"{"quantity": 2}"#).quantity, 2);
            assert_eq!(accepted(r#"{"quantity": 2.0}"#).quantity, 2);
            assert_eq!(accepted(r#"{"quantity": 2e1}"#).quantity, 20);
            assert_eq!(accepted(r#"{"quantity": 1, "stock": 5.0}"#).stock, Some(5));
            assert_eq!(accepted(r#"{"quantity": 1, "stock": null}"#).stock, None);
            assert_eq!(accepted(r#"{"quantity": 1}"#).stock, None);
        }

        #[test]
        fn fractions_strings_and_out_of_range_values_are_refused() {
            for body in [
                r#"{"quantity": 2.5}"#,
                r#"{"quantity": "2"}"#,
                r#"{"quantity": -1}"#,
                r#"{"quantity": -1.0}"#,
                r#"{"quantity": 4294967296}"#,
                r#"{"quantity": 1e300}"#,
                r#"{"quantity": true}"#,
                r#"{"quantity": null}"#,
                r#"{"quantity": 1, "stock": "5"}"#,
                r#"{"quantity": 1, "stock": 0.5}"#,
            ] {
                let error = parse(body).expect_err(body);
                assert!(error.contains("invalid"), "{body}: {error}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn extract(content_type: &str, body: &str) -> Result<serde_json::Value, ApiError> {
        let request = Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .expect("request");
        futures::executor::block_on(ApiJson::<serde_json::Value>::from_request(request, &()))
            .map(|ApiJson(value)| value)
    }

    #[test]
    fn a_nul_escape_is_found_in_any_string_and_only_there() {
        for body in [
            r#"{"name": "a\u0000b"}"#,
            r#"{"k\u0000": 1}"#,
            r#"[[{"deep": ["x", "\u0000"]}]]"#,
            r#"{"a": "\\\u0000"}"#,
            r#""\u0000""#,
        ] {
            assert!(json_holds_nul(body.as_bytes()), "{body}");
            let parsed: serde_json::Value = serde_json::from_str(body).expect(body);
            assert!(holds_nul(&parsed), "{body}");
        }
        for body in [
            r#"{"name": "\\u0000"}"#,
            r#"{"name": "\u0001 \u0100"}"#,
            r#"{"name": "u0000 \\\\u0000"}"#,
            r#"{"name": "\u0030"}"#,
            r#"{"name": "trailing \\"}"#,
            "",
        ] {
            assert!(!json_holds_nul(body.as_bytes()), "{body}");
        }
        // `\u00000` is U+0000 followed by the digit 0.
        assert!(json_holds_nul(br#""\u00000""#));
        assert!(
            !json_holds_nul(br#"{"name": "\\u0000"}"#),
            "an escaped backslash, then text"
        );
    }

    #[test]
    fn the_json_extractor_refuses_nul_and_keeps_its_other_answers() {
        let refused = extract("application/json", r#"{"name": "a\u0000b"}"#).expect_err("NUL");
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(refused.to_string().contains("U+0000"), "{refused}");
        assert_eq!(
            extract("application/json", r#"{"name": "a\\u0000b"}"#).expect("text"),
            serde_json::json!({"name": "a\\u0000b"})
        );
        assert_eq!(
            extract("application/problem+json; charset=utf-8", "[1]").expect("a +json type"),
            serde_json::json!([1])
        );
        for content_type in ["text/plain", "application/jsonx", "json", ""] {
            let error = extract(content_type, "[1]").expect_err(content_type);
            assert_eq!(
                error.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type}"
            );
        }
        assert_eq!(
            extract("application/json", "{").expect_err("syntax").status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn a_percent_encoded_nul_is_found_in_a_url_or_a_form() {
        assert!(percent_encoded_nul(b"/api/v1/products?q=a%00b"));
        assert!(percent_encoded_nul(b"/api/v1/orders/%00"));
        assert!(!percent_encoded_nul(b"/api/v1/products?q=100%2500"));
        assert!(!percent_encoded_nul(b"/api/v1/products?q=%0A"));
        assert!(percent_encoded_nul(b"email=a%40b.c&password=x%00y"));
    }
}
