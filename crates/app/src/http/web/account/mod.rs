//! The pages of an account: registration and sign-in ([`auth`]), the profile ([`profile`]),
//! orders ([`orders`]), data exports ([`exports`]) and uploads ([`uploads`]).
//!
//! Every action is a form answered with a `303 See Other`, and calls the same function as the
//! JSON API (`http::auth::register_account`, `http::orders::cancel_for`, …), so validation,
//! cache invalidation and metrics cannot drift apart. Forms of a signed-in visitor carry the
//! CSRF token bound to their session; the sign-in and registration forms the anonymous one.

pub mod auth;
pub mod exports;
pub mod orders;
pub mod profile;
pub mod uploads;

use axum::{
    body::Body,
    extract::{FromRequest, Request},
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::{csrf, error::PageError, page::Layout, visitor::Visitor};
use crate::{
    http::{authn::Principal, error::FieldError},
    state::AppState,
};

/// The layout of a signed-in visitor's page: their navigation, and the CSRF token of the
/// page's forms (bound to their session).
pub fn account_layout(state: &AppState, principal: &Principal, title: &str, notice: Option<&str>) -> Layout {
    Layout {
        title: title.to_owned(),
        page: "",
        visitor: Visitor::SignedIn(principal.clone()),
        csrf: csrf::token(state, principal.session_id.as_bytes()),
        notice: notice.map(str::to_owned),
        styles: &[],
    }
}

/// A form body (`application/x-www-form-urlencoded`); one that cannot be read is a 400 page,
/// not axum's plain-text rejection. A field holding U+0000 (`%00`) is refused here for every
/// form, as `ApiJson` does for the API's bodies.
#[derive(Debug)]
pub struct PageForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for PageForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let unreadable = || {
            PageError::BadRequest(
                "This form could not be read. Go back, reload the page and try again.".to_owned(),
            )
        };
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|_| unreadable())?;
        if crate::http::extract::percent_encoded_nul(&bytes) {
            return Err(PageError::BadRequest(
                "A field of this form holds a NUL character (U+0000), which no field accepts.".to_owned(),
            ));
        }
        match axum::Form::<T>::from_request(Request::from_parts(parts, Body::from(bytes)), state).await {
            Ok(axum::Form(form)) => Ok(Self(form)),
            Err(_) => Err(unreadable()),
        }
    }
}

/// A form whose only field is the CSRF token (sign out, cancel an order).
#[derive(Debug, Default, serde::Deserialize)]
pub struct CsrfForm {
    /// The page's token.
    #[serde(default)]
    pub csrf: String,
}

/// Messages for a form's fields, shown next to them (`<p class="error" id="{field}-error">`).
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    /// The message for `field`, if it has one.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, message)| message.as_str())
    }

    /// Whether no field has a message.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `message` for `field` (the first message of a field is the one shown).
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    /// The API's field errors as sentences for people: `labels` maps a request field to the
    /// label of its input (`("email", "Email")` → "Email must contain an @.").
    pub fn from_api(errors: &[FieldError], labels: &[(&str, &str)]) -> Self {
        let mut sentences = Self::default();
        for error in errors {
            let label = labels
                .iter()
                .find(|(field, _)| *field == error.field)
                .map_or(error.field.as_str(), |(_, label)| label);
            sentences.add(&error.field, format!("{label} {}.", error.message));
        }
        sentences
    }
}

/// A day for people: `2 December 2026`.
pub fn day(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y").to_string()
}

/// A size for people: `12.3 KB`, `1.5 MB` (binary multiples, as file managers show them).
pub fn bytes(size: u64) -> String {
    const KB: f64 = 1024.0;
    let size_f = size as f64;
    if size_f < KB {
        format!("{size} bytes")
    } else if size_f < KB * KB {
        format!("{:.1} KB", size_f / KB)
    } else {
        format!("{:.1} MB", size_f / (KB * KB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shown_in_the_largest_fitting_unit() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(12_595), "12.3 KB");
        assert_eq!(bytes(10 * 1024 * 1024), "10.0 MB");
    }

    #[test]
    fn api_field_errors_become_sentences_with_the_label() {
        let errors = [FieldError::new("email", "must contain an @")];
        let sentences = FieldErrors::from_api(&errors, &[("email", "Email")]);
        assert_eq!(sentences.get("email"), Some("Email must contain an @."));
        assert_eq!(sentences.get("name"), None);
    }
}
