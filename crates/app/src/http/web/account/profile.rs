//! The profile page: who the visitor is, the form to rename them or change their password
//! (the API's `PATCH /api/v1/me`, with its validation and its write-through to the users
//! cache), and the sign-out button.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
};
use outgrow_domain::Role;
use serde::Deserialize;

use super::{FieldErrors, PageForm, account_layout, day};
use crate::{
    http::web::{
        csrf,
        error::PageError,
        page::{Audience, Layout, render, see_other},
        visitor::SignedIn,
    },
    http::{
        authn::Principal,
        error::ApiError,
        users::{UpdateMeRequest, update_profile},
    },
    state::AppState,
};

#[derive(Template)]
#[template(path = "account/profile.html")]
struct ProfilePage {
    layout: Layout,
    email: String,
    /// The name in the form: the stored one, or what was typed.
    name: String,
    role: &'static str,
    member_since: String,
    is_admin: bool,
    errors: FieldErrors,
}

/// The profile page's query string.
#[derive(Debug, Default, Deserialize)]
pub struct ProfileQuery {
    /// Set after a successful save.
    pub saved: Option<String>,
}

/// The profile form as posted; empty password fields mean "keep the password".
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProfileForm {
    pub name: String,
    pub current_password: String,
    pub password: String,
    pub csrf: String,
}

/// The page for `principal`, with `name` in the form and `errors` next to the fields.
async fn profile_page(
    state: &AppState,
    principal: &Principal,
    name: Option<String>,
    errors: FieldErrors,
    notice: Option<&str>,
) -> Result<ProfilePage, PageError> {
    let user = state
        .users
        .by_id(principal.user_id)
        .await
        .map_err(ApiError::from)?
        .ok_or(PageError::NotFound("This account no longer exists."))?;
    Ok(ProfilePage {
        layout: account_layout(state, principal, "Your account", notice),
        email: user.email,
        name: name.unwrap_or(user.name),
        role: user.role.as_str(),
        member_since: day(user.created_at),
        is_admin: user.role == Role::Admin,
        errors,
    })
}

/// `GET /account`: the profile, and `?saved=1`'s notice.
pub async fn show_profile(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let Query(query) = Query::<ProfileQuery>::try_from_uri(&uri)
        .map_err(|_| PageError::BadRequest("This account link is malformed.".to_owned()))?;
    let notice = query.saved.is_some().then_some("Profile saved");
    let page = profile_page(&state, &principal, None, FieldErrors::default(), notice).await?;
    render(&page, Audience::Private, &headers)
}

/// `POST /account`: saves the profile as `PATCH /api/v1/me` does, then back to the page with
/// its notice; mistakes are shown next to their field.
pub async fn save_profile(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    headers: HeaderMap,
    PageForm(form): PageForm<ProfileForm>,
) -> Result<Response, PageError> {
    csrf::check(&state, principal.session_id.as_bytes(), &form.csrf)?;
    let typed = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    let request = UpdateMeRequest {
        name: Some(form.name.clone()),
        password: typed(&form.password),
        current_password: typed(&form.current_password),
    };
    let errors = match update_profile(&state, &principal, &request).await {
        Ok(_) => return Ok(see_other("/account?saved=1")),
        Err(ApiError::Validation(errors)) => FieldErrors::from_api(
            &errors,
            &[
                ("name", "Name"),
                ("password", "New password"),
                ("current_password", "Current password"),
            ],
        ),
        Err(ApiError::Forbidden(_)) => {
            let mut errors = FieldErrors::default();
            errors.add("current_password", "The current password is wrong.");
            errors
        }
        Err(other) => return Err(other.into()),
    };
    let page = profile_page(&state, &principal, Some(form.name), errors, None).await?;
    let mut response = render(&page, Audience::Private, &headers)?;
    *response.status_mut() = StatusCode::BAD_REQUEST;
    Ok(response)
}
