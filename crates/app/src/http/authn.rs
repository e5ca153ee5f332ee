//! Authentication: who is calling, decided once per request by the guard ([`super::stack`]).
//!
//! A bearer token is verified (signature, expiry, key id) and the session it names must still
//! be active, so logout and logout-all take effect at once. Without a bearer token, the session
//! cookie is looked up by its hash. The outcome is stored in the request's extensions, where the
//! rate limiter (to key by user) and the [`Principal`] extractor read it.

use axum::http::{HeaderMap, Method, header};
use chrono::Utc;
use outgrow_domain::{Role, UserId};
use uuid::Uuid;

use outgrow_platform::config::SessionStoreFailureMode;

use super::{error::ApiError, reply::header_items};
use crate::{
    auth::tokens::{TokenError, hash_secret, session_of},
    repo::StoreError,
    state::AppState,
};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// Their role.
    pub role: Role,
    /// The session the credential belongs to.
    pub session_id: Uuid,
    /// Which credential was presented.
    pub via: Credential,
}

impl Principal {
    /// Whether the caller may act on `user`'s data: their own, or anyone's for an admin.
    pub fn may_access(&self, user: UserId) -> bool {
        self.user_id == user || self.role == Role::Admin
    }

    /// Lets an administrator through; anyone else gets a 403 saying `refusal` (what only
    /// admins may do).
    pub fn require_admin(&self, refusal: &'static str) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::User => Err(ApiError::Forbidden(refusal)),
        }
    }
}

/// The kinds of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <access token>`.
    Bearer,
    /// The browser session cookie.
    Cookie,
}

/// The outcome of authentication, stored in the request extensions.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No credential was presented.
    Anonymous,
    /// A valid credential.
    Authenticated(Principal),
    /// A credential was presented and refused; the text says why (without helping an attacker).
    Rejected(&'static str),
}

/// Who is calling, from the bearer token (whose session must still be active) or the session
/// cookie; an error when the credential cannot be checked or a cookie write is cross-site.
pub async fn resolve(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Authentication, ApiError> {
    let now = Utc::now();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Some(token) = value.to_str().ok().and_then(bearer_token) else {
            return Ok(Authentication::Rejected(
                "the Authorization header must be `Bearer <token>`",
            ));
        };
        let claims = match state.tokens.verify(token, now) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => {
                return Ok(Authentication::Rejected(
                    "the access token has expired; refresh it",
                ));
            }
            Err(TokenError::Invalid(reason)) => {
                tracing::debug!(reason, "refused an access token");
                return Ok(Authentication::Rejected("the access token is invalid"));
            }
        };
        let session = match state.sessions.active(claims.sid, now).await {
            Ok(session) => session,
            Err(StoreError::Unavailable(reason)) => {
                return Ok(match state.settings.auth_on_session_store_failure {
                    SessionStoreFailureMode::TokenOnly => {
                        // The signature and expiry were checked; only revocation cannot be.
                        metrics::counter!("auth_session_check_fallback_total").increment(1);
                        tracing::warn!(
                            reason,
                            "session store unavailable; accepting the token on its signature"
                        );
                        Authentication::Authenticated(Principal {
                            user_id: claims.sub,
                            role: claims.role,
                            session_id: claims.sid,
                            via: Credential::Bearer,
                        })
                    }
                    SessionStoreFailureMode::Deny => return Err(ApiError::Unavailable(reason)),
                });
            }
            Err(other) => return Err(other.into()),
        };
        return Ok(match session {
            Some(session) if session.user_id == claims.sub => Authentication::Authenticated(Principal {
                user_id: claims.sub,
                role: claims.role,
                session_id: claims.sid,
                via: Credential::Bearer,
            }),
            _ => Authentication::Rejected("the session has ended; sign in again"),
        });
    }
    let Some(secret) = cookie_value(headers, &state.settings.session_cookie_name) else {
        return Ok(Authentication::Anonymous);
    };
    if !method_is_safe(method) && !same_site_request(headers, &state.settings.cors_origins) {
        return Err(ApiError::Forbidden(
            "cross-site requests with the session cookie are refused",
        ));
    }
    let Some(session_id) = session_of(secret) else {
        return Ok(Authentication::Rejected("the session has ended; sign in again"));
    };
    Ok(
        match state
            .sessions
            .by_cookie(
                crate::repo::SessionCookie {
                    session_id,
                    secret_hash: hash_secret(secret),
                },
                now,
            )
            .await?
        {
            Some(session) => Authentication::Authenticated(Principal {
                user_id: session.user_id,
                role: session.role,
                session_id: session.id,
                via: Credential::Cookie,
            }),
            None => Authentication::Rejected("the session has ended; sign in again"),
        },
    )
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The value of cookie `name` from the `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    header_items(headers, header::COOKIE, ';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

fn method_is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// CSRF defence for cookie-authenticated writes, on top of `SameSite=Lax`: browsers label
/// cross-site requests with `Sec-Fetch-Site` and send `Origin` on every cross-origin write, so a
/// write whose origin is neither this host nor a configured CORS origin is refused. Clients that
/// send neither header (curl, server-side code) are not browsers and cannot be CSRF victims.
fn same_site_request(headers: &HeaderMap, allowed_origins: &[String]) -> bool {
    let header_text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if header_text("sec-fetch-site") == Some("cross-site") {
        return false;
    }
    let Some(origin) = header_text("origin") else {
        return true;
    };
    if allowed_origins.iter().any(|allowed| allowed == origin) {
        return true;
    }
    let origin_host = origin.split_once("://").map(|(_, host)| host);
    origin_host.is_some() && origin_host == header_text("host")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    #[test]
    fn the_named_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "a=1; outgrow_session=secret; b=2")]);
        assert_eq!(cookie_value(&map, "outgrow_session"), Some("secret"));
        assert_eq!(cookie_value(&map, "missing"), None);
    }

    #[test]
    fn cross_site_cookie_writes_are_refused() {
        let allowed = vec!["https://shop.example".to_owned()];
        assert!(same_site_request(&headers(&[("host", "api.local")]), &allowed));
        assert!(same_site_request(
            &headers(&[("host", "api.local"), ("origin", "http://api.local")]),
            &allowed
        ));
        assert!(same_site_request(
            &headers(&[("host", "api.local"), ("origin", "https://shop.example")]),
            &allowed
        ));
        assert!(!same_site_request(
            &headers(&[("host", "api.local"), ("origin", "https://evil.example")]),
            &allowed
        ));
        assert!(!same_site_request(
            &headers(&[("sec-fetch-site", "cross-site")]),
            &allowed
        ));
    }
}
