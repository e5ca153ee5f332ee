//! `/api/v1/auth/*`: register, login, refresh, logout, logout-all.
//!
//! Every route here sits behind the strict `auth` rate policy, keyed by client address.

use std::net::IpAddr;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use outgrow_domain::{Email, Password, Role, UserName};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use super::{
    authn::Principal,
    error::{ApiError, FieldError},
    extract::ApiJson,
    middleware::ClientAddress,
    responses::{BadRefreshToken, InvalidFields, Malformed, NotSignedIn, RateLimited, WrongCredentials},
    users::UserResponse,
};
use outgrow_platform::jobs::Job;

use crate::{
    auth::tokens::{hash_secret, new_session_secret, session_of},
    jobs::{EmailTemplate, SendEmail},
    repo::{NewSession, RefreshExchange, Rotation, Session, StoreError, User},
    state::AppState,
};

/// The routes of this feature (under `/api/v1/auth`).
pub fn router() -> OpenApiRouter<AppState> {
    feature_router![register; login; refresh; logout; logout_all]
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// E-mail address; normalised to lower case. It is the login name.
    #[schema(example = "ann@example.org")]
    pub email: String,
    /// 8 to 128 characters, not the e-mail address, not a common password.
    #[schema(example = "correct horse battery staple", min_length = 8, max_length = 128)]
    pub password: String,
    /// Display name, 1 to 100 characters.
    #[schema(example = "Ann Lee")]
    pub name: String,
}

/// What registration answers, whether or not the address already had an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationAccepted {
    /// What happens next, the same sentence in either case.
    #[schema(
        example = "If this address can be registered, the account is ready: sign in with it. An e-mail is on its way to it either way."
    )]
    pub detail: &'static str,
}

/// The one answer to a well-formed registration.
pub const REGISTRATION_ACCEPTED: &str = "If this address can be registered, the account is ready: sign in with it. An e-mail is on its way to it either way.";

/// Creates an account with the `user` role. A well-formed request gets the same 202 whether or
/// not the address already has an account, after the same work (the password is hashed
/// either way), so registration does not tell who has an account here: a new address gets the
/// welcome e-mail, a taken one a notice that someone tried to register it.
#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 202, description = "Accepted: the account exists now, or the address already had one (an e-mail tells its owner which)", body = RegistrationAccepted),
        InvalidFields, RateLimited,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    register_account(&state, &request).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RegistrationAccepted {
            detail: REGISTRATION_ACCEPTED,
        }),
    )
        .into_response())
}

/// How a registration ended.
#[derive(Debug)]
pub enum Registered {
    /// A new account.
    Created(User),
    /// The address already had an account; its owner is told by e-mail.
    AlreadyTaken,
}

/// Registration, shared by the API and the registration page: the fields are checked, the
/// password hashed (Argon2id, on the blocking pool), and the account created with its welcome
/// e-mail job in one transaction. A taken address queues a notice to its owner instead
/// (at most one waiting per address), after the same hashing.
pub async fn register_account(state: &AppState, request: &RegisterRequest) -> Result<Registered, ApiError> {
    let mut errors = Vec::new();
    let email = FieldError::collect("email", Email::parse(&request.email), &mut errors);
    let name = FieldError::collect("name", UserName::parse(&request.name), &mut errors);
    let password = Password::parse(&request.password, email.as_ref());
    let password = FieldError::collect("password", password, &mut errors);
    let (Some(email), Some(name), Some(password)) = (email, name, password) else {
        return Err(ApiError::Validation(errors));
    };
    let welcome = SendEmail {
        to: email.as_str().to_owned(),
        template: EmailTemplate::Welcome {
            name: name.as_str().to_owned(),
        },
    }
    .to_new_job()
    .map_err(anyhow::Error::from)?;
    let notice = SendEmail {
        to: email.as_str().to_owned(),
        template: EmailTemplate::RegistrationAttempt,
    }
    .to_new_job()
    .map_err(anyhow::Error::from)?
    .dedup(format!("registration-attempt:{}", email.as_str()));
    let account = state
        .passwords
        .new_account(email, name, password, Role::User)
        .await?;
    match state.users.create(account, &[welcome]).await {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "account registered; welcome e-mail queued");
            Ok(Registered::Created(user))
        }
        Err(StoreError::Conflict(_)) => {
            state
                .db
                .jobs()
                .enqueue(&notice)
                .await
                .map_err(anyhow::Error::from)?;
            tracing::info!("registration of a taken address; its owner is told by e-mail");
            Ok(Registered::AlreadyTaken)
        }
        Err(other) => Err(other.into()),
    }
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's e-mail address.
    #[schema(example = "ann@example.org")]
    pub email: String,
    /// The password (at most 1,024 bytes).
    #[schema(min_length = 1)]
    pub password: String,
    /// Also set the `HttpOnly` session cookie (for browsers).
    #[serde(default)]
    pub session_cookie: bool,
}

/// An access token and the refresh token to renew it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Lifetime of the access token, in seconds.
    pub expires_in: i64,
    /// Opaque; exchange it at `/auth/refresh` for a new pair. Single use.
    pub refresh_token: String,
    /// When the session ends; refreshing does not extend it.
    pub session_expires_at: DateTime<Utc>,
}

/// A successful login.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The tokens.
    #[serde(flatten)]
    pub tokens: TokenPair,
    /// Who signed in.
    pub user: UserResponse,
}

/// The longest password accepted at login; longer input is refused before any hashing.
const MAX_LOGIN_PASSWORD_BYTES: usize = 1024;

/// Signs in. A wrong e-mail and a wrong password get the same 401 after the same work.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; sets the session cookie when asked", body = LoginResponse),
        Malformed, WrongCredentials, RateLimited,
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let user = check_credentials(&state, client, &request.email, &request.password).await?;
    let started = start_session(&state, &user, request.session_cookie).await?;
    let tokens = token_pair(&state, &started.session, started.refresh_token, started.now)?;
    let mut response = Json(LoginResponse {
        tokens,
        user: UserResponse::from(user),
    })
    .into_response();
    if let Some(secret) = started.cookie_secret {
        set_session_cookie(&state, response.headers_mut(), &secret)?;
    }
    Ok(response)
}

/// The user whose credentials these are, shared by the API and the sign-in page. A wrong
/// e-mail and a wrong password get the same [`ApiError::Unauthorized`] after the same work
/// (an unknown address is verified against a dummy hash).
///
/// Attempts are throttled per account (by the normalized address, whether or not an account
/// has it, so the throttle tells nothing either) and per client address, with progressive
/// delays ([`outgrow_platform::throttle`]): an early attempt gets [`ApiError::RateLimited`]
/// before any password work. Every attempt counts against the account and a success clears
/// them; only failures count against the address.
pub async fn check_credentials(
    state: &AppState,
    client: Option<IpAddr>,
    email: &str,
    password: &str,
) -> Result<User, ApiError> {
    let email = Email::parse(email).map_err(|error| ApiError::invalid("email", error))?;
    if password.is_empty() || password.len() > MAX_LOGIN_PASSWORD_BYTES {
        return Err(ApiError::invalid(
            "password",
            format!("must be 1 to {MAX_LOGIN_PASSWORD_BYTES} bytes"),
        ));
    }
    let throttle = &state.login_throttle;
    let (per_account, per_address) = (&state.policies.login_account, &state.policies.login_address);
    let account_key = hex::encode(sha2::Sha256::digest(email.as_str().as_bytes()));
    let address_key = client.map(|ip| ip.to_string());
    if let Some(address_key) = &address_key {
        throttle
            .check(per_address, address_key)
            .await
            .map_err(|wait| throttled("address", wait))?;
    }
    throttle
        .attempt(per_account, &account_key)
        .await
        .map_err(|wait| throttled("account", wait))?;
    let credentials = state.users.credentials_by_email(&email).await?;
    let stored = credentials.as_ref().map(|found| found.password_hash.as_str());
    let verified = state.passwords.verify(password, stored).await?;
    let Some(credentials) = credentials.filter(|_| verified) else {
        if let Some(address_key) = &address_key {
            throttle.fail(per_address, address_key).await;
        }
        metrics::counter!("auth_logins_total", "result" => "failure").increment(1);
        return Err(ApiError::Unauthorized("wrong e-mail address or password"));
    };
    throttle.clear(per_account, &account_key).await;
    metrics::counter!("auth_logins_total", "result" => "success").increment(1);
    Ok(credentials.user)
}

/// A sign-in attempt refused for coming too early: 429 with `Retry-After` in whole seconds.
fn throttled(by: &'static str, wait: std::time::Duration) -> ApiError {
    metrics::counter!("auth_logins_total", "result" => "throttled", "by" => by).increment(1);
    ApiError::RateLimited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

/// A session just started: what the API hands out, and the cookie's secret when asked for.
#[derive(Debug)]
pub struct StartedSession {
    /// The stored session.
    pub session: Session,
    /// Its first refresh token.
    pub refresh_token: String,
    /// The session cookie's value, when a cookie was asked for.
    pub cookie_secret: Option<String>,
    /// When it started.
    pub now: DateTime<Utc>,
}

/// Starts a session of `user` (with a cookie secret when `with_cookie`), shared by the API's
/// login and the sign-in and registration pages.
pub async fn start_session(
    state: &AppState,
    user: &User,
    with_cookie: bool,
) -> Result<StartedSession, ApiError> {
    let now = Utc::now();
    let session = Session {
        id: Uuid::new_v4(),
        user_id: user.id,
        role: user.role,
        expires_at: now
            + chrono::Duration::from_std(state.settings.session_ttl).map_err(anyhow::Error::from)?,
    };
    let refresh_token = new_session_secret(session.id);
    let cookie_secret = with_cookie.then(|| new_session_secret(session.id));
    state
        .sessions
        .create(NewSession {
            session: session.clone(),
            refresh_hash: hash_secret(&refresh_token),
            cookie_hash: cookie_secret.as_deref().map(hash_secret),
            now,
        })
        .await?;
    tracing::info!(user_id = %user.id, session_id = %session.id, "signed in");
    Ok(StartedSession {
        session,
        refresh_token,
        cookie_secret,
        now,
    })
}

/// Sets the session cookie to `secret` for the session's lifetime.
pub fn set_session_cookie(state: &AppState, headers: &mut HeaderMap, secret: &str) -> Result<(), ApiError> {
    set_cookie(state, headers, secret, state.settings.session_ttl.as_secs())
}

fn token_pair(
    state: &AppState,
    session: &Session,
    refresh_token: String,
    now: DateTime<Utc>,
) -> Result<TokenPair, ApiError> {
    Ok(TokenPair {
        access_token: state
            .tokens
            .issue(session.user_id, session.id, session.role, now)?,
        token_type: "Bearer",
        expires_in: state.tokens.ttl().num_seconds(),
        refresh_token,
        session_expires_at: session.expires_at,
    })
}

fn set_cookie(state: &AppState, headers: &mut HeaderMap, value: &str, max_age: u64) -> Result<(), ApiError> {
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        state.settings.session_cookie_name
    );
    headers.append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(anyhow::Error::from)?,
    );
    Ok(())
}

/// A refresh token to exchange.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The current refresh token of the session.
    pub refresh_token: String,
}

/// Exchanges a refresh token for a new access token and a new refresh token. The presented
/// token is spent; presenting it again revokes the whole session (theft detection).
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, description = "A new token pair", body = TokenPair), BadRefreshToken)
)]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let now = Utc::now();
    let Some(session_id) = session_of(&request.refresh_token) else {
        return Err(ApiError::Unauthorized(
            "the refresh token is invalid or its session has ended",
        ));
    };
    let replacement = new_session_secret(session_id);
    match state
        .sessions
        .rotate(
            RefreshExchange {
                session_id,
                presented: hash_secret(&request.refresh_token),
                replacement: hash_secret(&replacement),
            },
            now,
        )
        .await?
    {
        Rotation::Rotated(session) => Ok(Json(token_pair(&state, &session, replacement, now)?)),
        Rotation::Reused(session_id) => {
            metrics::counter!("auth_refresh_reuse_total").increment(1);
            tracing::warn!(%session_id, "a spent refresh token was presented again; session revoked");
            Err(ApiError::Unauthorized(
                "this refresh token was already used; the session has been revoked",
            ))
        }
        Rotation::Invalid => Err(ApiError::Unauthorized(
            "the refresh token is invalid or its session has ended",
        )),
    }
}

/// Ends the current session: its access tokens, refresh token and cookie stop working at once.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "Signed out; the cookie is cleared"), NotSignedIn)
)]
pub async fn logout(State(state): State<AppState>, principal: Principal) -> Result<Response, ApiError> {
    end_session(&state, &principal).await?;
    signed_out(&state)
}

/// Revokes the caller's session, shared by the API and the sign-out form (which then clear
/// the cookie with [`clear_session_cookie`]).
pub async fn end_session(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    state.sessions.revoke(principal.session_id, Utc::now()).await?;
    tracing::info!(user_id = %principal.user_id, session_id = %principal.session_id, "signed out");
    Ok(())
}

/// Expires the session cookie.
pub fn clear_session_cookie(state: &AppState, headers: &mut HeaderMap) -> Result<(), ApiError> {
    set_cookie(state, headers, "", 0)
}

/// Ends every session of the signed-in user, on every device.
#[utoipa::path(
    post, path = "/api/v1/auth/logout-all", tag = "auth",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "Every session ended; the cookie is cleared"), NotSignedIn)
)]
pub async fn logout_all(State(state): State<AppState>, principal: Principal) -> Result<Response, ApiError> {
    let ended = state
        .sessions
        .revoke_all(principal.user_id, None, Utc::now())
        .await?;
    tracing::info!(user_id = %principal.user_id, sessions = ended.len(), "signed out everywhere");
    signed_out(&state)
}

fn signed_out(state: &AppState) -> Result<Response, ApiError> {
    let mut response = StatusCode::NO_CONTENT.into_response();
    clear_session_cookie(state, response.headers_mut())?;
    Ok(response)
}
