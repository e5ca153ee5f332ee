//! Registration, sign-in and sign-out pages: the API's registration and credential check
//! (`http::auth`), then a session with the browser cookie, as the API's login with
//! `session_cookie: true` starts. The forms before sign-in carry the anonymous CSRF token
//! (against login CSRF: an attacker signing a victim into the attacker's account).

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
};
use serde::Deserialize;

use super::{CsrfForm, FieldErrors, PageForm};
use crate::{
    http::web::{
        csrf,
        error::PageError,
        page::{Audience, Layout, render, see_other},
        visitor::{Visitor, safe_next},
    },
    http::{
        auth::{
            REGISTRATION_ACCEPTED, RegisterRequest, check_credentials, clear_session_cookie, end_session,
            register_account, set_session_cookie, start_session,
        },
        error::ApiError,
        middleware::ClientAddress,
    },
    repo::User,
    state::AppState,
};

/// The sentence for any failed sign-in: it must not tell which of the two was wrong.
const WRONG_CREDENTIALS: &str = "The e-mail or password is wrong.";

/// The layout of a form shown before sign-in, with the token bound to `binding`.
fn anonymous_layout(state: &AppState, title: &str, binding: &str) -> Layout {
    Layout {
        csrf: csrf::token(state, binding.as_bytes()),
        ..Layout::public(title, "")
    }
}

/// Renders `page` with `status`, giving the visitor their anonymous CSRF cookie when new.
fn render_anonymous(
    page: &impl Template,
    status: StatusCode,
    headers: &HeaderMap,
    cookie: Option<axum::http::HeaderValue>,
) -> Result<Response, PageError> {
    let mut response = render(page, Audience::Private, headers)?;
    if status != StatusCode::OK {
        *response.status_mut() = status;
    }
    csrf::set_cookie(response.headers_mut(), cookie);
    Ok(response)
}

/// A 303 to `location` that signs `user` in: a new session, and its cookie.
async fn signed_in_redirect(state: &AppState, user: &User, location: &str) -> Result<Response, PageError> {
    let started = start_session(state, user, true).await?;
    let mut response = see_other(location);
    if let Some(secret) = started.cookie_secret {
        set_session_cookie(state, response.headers_mut(), &secret)?;
    }
    Ok(response)
}

#[derive(Template)]
#[template(path = "account/register.html")]
struct RegisterPage {
    layout: Layout,
    /// What was typed (never the password).
    name: String,
    email: String,
    errors: FieldErrors,
}

/// The registration form as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterForm {
    pub name: String,
    pub email: String,
    pub password: String,
    pub csrf: String,
}

/// `GET /register`: the registration form.
pub async fn show_register_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (binding, cookie) = csrf::anonymous_binding(&state, &headers);
    let page = RegisterPage {
        layout: anonymous_layout(&state, "Create an account", &binding),
        name: String::new(),
        email: String::new(),
        errors: FieldErrors::default(),
    };
    render_anonymous(&page, StatusCode::OK, &headers, cookie)
}

/// `POST /register`: creates the account as `POST /api/v1/auth/register` does and sends the
/// visitor to the sign-in page with the same notice whether or not the address was new;
/// mistakes are shown next to their field.
pub async fn create_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    PageForm(form): PageForm<RegisterForm>,
) -> Result<Response, PageError> {
    let (binding, _) = csrf::anonymous_binding(&state, &headers);
    csrf::check(&state, binding.as_bytes(), &form.csrf)?;
    let request = RegisterRequest {
        email: form.email.clone(),
        password: form.password,
        name: form.name.clone(),
    };
    let (status, errors) = match register_account(&state, &request).await {
        // The same answer whether or not the address was new: registration must not tell who
        // has an account here. The new user signs in next.
        Ok(_) => return Ok(see_other("/login?registered=true")),
        Err(ApiError::Validation(errors)) => (
            StatusCode::BAD_REQUEST,
            FieldErrors::from_api(
                &errors,
                &[("name", "Name"), ("email", "Email"), ("password", "Password")],
            ),
        ),
        Err(other) => return Err(other.into()),
    };
    let page = RegisterPage {
        layout: anonymous_layout(&state, "Create an account", &binding),
        name: form.name,
        email: form.email,
        errors,
    };
    render_anonymous(&page, status, &headers, None)
}

#[derive(Template)]
#[template(path = "account/login.html")]
struct LoginPage {
    layout: Layout,
    /// What was typed (never the password).
    email: String,
    /// Where to go after signing in (checked with `safe_next` when used).
    next: String,
    /// Why the sign-in failed, shown above the form.
    failure: Option<String>,
}

/// The sign-in page's query string.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// The page that sent the visitor here.
    #[serde(default)]
    pub next: String,
    /// Set by the registration form's redirect.
    #[serde(default)]
    pub registered: bool,
}

/// The sign-in form as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    pub email: String,
    pub password: String,
    pub next: String,
    pub csrf: String,
}

/// `GET /login?next=`: the sign-in form.
pub async fn show_login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let Query(query) = Query::<LoginQuery>::try_from_uri(&uri)
        .map_err(|_| PageError::BadRequest("This sign-in link is malformed.".to_owned()))?;
    let (binding, cookie) = csrf::anonymous_binding(&state, &headers);
    let mut layout = anonymous_layout(&state, "Sign in", &binding);
    // After registering: the same notice whether or not the address was new.
    layout.notice = query.registered.then(|| REGISTRATION_ACCEPTED.to_owned());
    let page = LoginPage {
        layout,
        email: String::new(),
        next: query.next,
        failure: None,
    };
    render_anonymous(&page, StatusCode::OK, &headers, cookie)
}

/// `POST /login`: checks the credentials as `POST /api/v1/auth/login` does (the same work for
/// an unknown address), sets the session cookie and goes to `next` when it is a local path.
pub async fn sign_in(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    PageForm(form): PageForm<LoginForm>,
) -> Result<Response, PageError> {
    let (binding, _) = csrf::anonymous_binding(&state, &headers);
    csrf::check(&state, binding.as_bytes(), &form.csrf)?;
    let (failure, retry_after) = match check_credentials(&state, client, &form.email, &form.password).await {
        Ok(user) => return signed_in_redirect(&state, &user, safe_next(Some(&form.next))).await,
        Err(ApiError::Unauthorized(_) | ApiError::Validation(_)) => (WRONG_CREDENTIALS.to_owned(), None),
        Err(ApiError::RateLimited(seconds)) => (
            format!("Too many sign-in attempts. Try again in {seconds} s."),
            Some(seconds),
        ),
        Err(other) => return Err(other.into()),
    };
    let page = LoginPage {
        layout: anonymous_layout(&state, "Sign in", &binding),
        email: form.email,
        next: form.next,
        failure: Some(failure),
    };
    let Some(seconds) = retry_after else {
        return render_anonymous(&page, StatusCode::BAD_REQUEST, &headers, None);
    };
    let mut response = render_anonymous(&page, StatusCode::TOO_MANY_REQUESTS, &headers, None)?;
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, seconds.into());
    Ok(response)
}

/// `POST /logout`: ends the session as `POST /api/v1/auth/logout` does (revoked, cookie
/// cleared) and goes to the catalog. Someone already signed out just goes there.
pub async fn sign_out(
    State(state): State<AppState>,
    visitor: Visitor,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    let Some(principal) = visitor.principal() else {
        return Ok(see_other("/"));
    };
    csrf::check(&state, principal.session_id.as_bytes(), &form.csrf)?;
    end_session(&state, principal).await?;
    let mut response = see_other("/");
    clear_session_cookie(&state, response.headers_mut())?;
    Ok(response)
}
