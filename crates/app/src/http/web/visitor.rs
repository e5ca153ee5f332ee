//! Who is looking at a page, from the authentication the guard already did (the session
//! cookie, looked up by its hash). Pages that need an account redirect to the sign-in page
//! instead of answering 401; admin pages answer a 403 page to everyone else.

use axum::{
    extract::FromRequestParts,
    http::request::Parts,
    response::{IntoResponse, Response},
};
use outgrow_domain::Role;

use crate::http::authn::{Authentication, Principal};

/// Anyone: signed in or not. A refused cookie (an ended session) counts as not signed in.
#[derive(Debug, Clone, Default)]
pub enum Visitor {
    /// Not signed in.
    #[default]
    Anonymous,
    /// Signed in.
    SignedIn(Principal),
}

impl Visitor {
    /// The signed-in principal, if any.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Self::Anonymous => None,
            Self::SignedIn(principal) => Some(principal),
        }
    }

    /// Whether the visitor is an administrator.
    pub fn is_admin(&self) -> bool {
        self.principal()
            .is_some_and(|principal| principal.role == Role::Admin)
    }
}
impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(match parts.extensions.get::<Authentication>() {
            Some(Authentication::Authenticated(principal)) => Self::SignedIn(principal.clone()),
            _ => Self::Anonymous,
        })
    }
}

/// A signed-in visitor; anyone else is sent to `/login?next=<this page>`.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Principal);

/// The redirect to the sign-in page, coming back to `path` after.
#[derive(Debug)]
pub struct SignInFirst(String);

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        axum::response::Redirect::to(&format!("/login?next={}", form_encode(&self.0))).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Ok(visitor) = Visitor::from_request_parts(parts, state).await;
        match visitor {
            Visitor::SignedIn(principal) => Ok(Self(principal)),
            // Only a page's own path comes back: never a query string that could hold a token.
            Visitor::Anonymous => Err(SignInFirst(parts.uri.path().to_owned())),
        }
    }
}

/// A signed-in administrator; others are sent to sign in, or get a 403 page.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

/// Why [`Admin`] refused: not signed in (a redirect), or not an administrator (a 403 page,
/// rendered by `error`, which renders every error page).
#[derive(Debug)]
pub enum NotAdmin {
    /// Sign in first.
    SignInFirst(SignInFirst),
    /// Signed in, but not an administrator.
    Forbidden,
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = NotAdmin;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let SignedIn(principal) = SignedIn::from_request_parts(parts, state)
            .await
            .map_err(NotAdmin::SignInFirst)?;
        if principal.role == Role::Admin {
            Ok(Self(principal))
        } else {
            Err(NotAdmin::Forbidden)
        }
    }
}

/// Percent-encodes `text` for a query string.
pub fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Where to go after signing in: `next` when it is a path on this site, else the account page.
/// (`//evil.example` and `https://…` are refused: an open redirect helps phishing.)
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => path,
        _ => "/account",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/account/orders")), "/account/orders");
        for unsafe_next in [
            None,
            Some("//evil.example"),
            Some("https://evil.example"),
            Some("/\\evil"),
        ] {
            assert_eq!(safe_next(unsafe_next), "/account");
        }
    }
}
