//! CSRF tokens for forms (OWASP's "signed double-submit" pattern, stateless across instances).
//!
//! A form's hidden `csrf` field must equal HMAC-SHA256(key, binding), where the binding is
//! the visitor's session id once signed in, and before that (the sign-in and registration forms,
//! against login CSRF) a random value in the `outgrow_csrf` cookie. An attacker's page can make
//! a browser post a form, but cannot read the token of the victim's session, nor compute one
//! without the key (derived from the JWT signing key, so every instance agrees). This is on
//! top of `SameSite=Lax` cookies and the guard's `Sec-Fetch-Site`/`Origin` check.

use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::PageError;
use crate::{http::authn::cookie_value, state::AppState};

/// The cookie holding the binding of a visitor who is not signed in.
pub const COOKIE: &str = "outgrow_csrf";

fn mac(key: &[u8; 32], binding: &[u8]) -> Hmac<Sha256> {
    // A 32-byte key is always valid for HMAC.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    // The prefix keeps these MACs apart from the export links' (same key).
    mac.update(b"csrf:");
    mac.update(binding);
    mac
}

/// The token for forms bound to `binding`.
pub fn token(state: &AppState, binding: &[u8]) -> String {
    hex::encode(mac(state.link_keys.signing(), binding).finalize().into_bytes())
}

/// Accepts `submitted` when it is the token for `binding` (compared in constant time) under any
/// configured key, so a form rendered before a key rotation still posts after it.
pub fn check(state: &AppState, binding: &[u8], submitted: &str) -> Result<(), PageError> {
    let valid = hex::decode(submitted).ok().is_some_and(|bytes| {
        state
            .link_keys
            .verifying()
            .any(|key| mac(key, binding).verify_slice(&bytes).is_ok())
    });
    if valid {
        Ok(())
    } else {
        Err(PageError::BadRequest(
            "This form has expired or did not come from this site. Go back, reload the page and try again."
                .to_owned(),
        ))
    }
}

/// The binding of a visitor who is not signed in: their `outgrow_csrf` cookie, or a new one
/// with the `Set-Cookie` that gives it to them.
pub fn anonymous_binding(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(value) = cookie_value(headers, COOKIE).filter(|value| value.len() == 32) {
        return (value.to_owned(), None);
    }
    let value = hex::encode(rand::random::<[u8; 16]>());
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}");
    (value, HeaderValue::from_str(&cookie).ok())
}

/// Adds `cookie` (from [`anonymous_binding`]) to a response's headers.
pub fn set_cookie(headers: &mut HeaderMap, cookie: Option<HeaderValue>) {
    if let Some(cookie) = cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
}
