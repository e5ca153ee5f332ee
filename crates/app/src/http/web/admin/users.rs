//! `GET /admin/users`: every account in creation order, a page at a time, from the same
//! repository listing as the admin API's `GET /api/v1/users`.

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use outgrow_domain::UserId;
use serde::Deserialize;

use super::{PAGE_SIZE, layout, when};
use crate::{
    http::web::{
        error::PageError,
        page::{Audience, Layout, render},
        visitor::Admin,
    },
    http::{error::ApiError, paging::cut_page},
    repo::User,
    state::AppState,
};

/// A row of the user list.
#[derive(Debug, Clone)]
pub struct UserLine {
    pub email: String,
    pub name: String,
    /// `user` or `admin`.
    pub role: &'static str,
    /// `2026-12-02 18:42 UTC`.
    pub created: String,
    /// RFC 3339, for `<time datetime>`.
    pub created_at: String,
}

impl From<User> for UserLine {
    fn from(user: User) -> Self {
        Self {
            role: user.role.as_str(),
            created: when(user.created_at),
            created_at: user.created_at.to_rfc3339(),
            email: user.email,
            name: user.name,
        }
    }
}

/// The list's query string.
#[derive(Debug, Deserialize)]
pub struct UsersQuery {
    /// The last user of the previous page.
    pub after: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserLine>,
    next: Option<String>,
}

/// `GET /admin/users`: a page of accounts (`?after=` the last id of the previous page).
pub async fn show_users(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let malformed = || PageError::BadRequest("This user list link is malformed.".to_owned());
    let Query(query) = Query::<UsersQuery>::try_from_uri(&uri).map_err(|_| malformed())?;
    let after = query
        .after
        .as_deref()
        .map(UserId::parse)
        .transpose()
        .map_err(|_| malformed())?;
    let mut users = state
        .users
        .list(after, PAGE_SIZE + 1)
        .await
        .map_err(ApiError::from)?;
    let next =
        cut_page(&mut users, PAGE_SIZE, |user| user.id).map(|after| format!("/admin/users?after={after}"));
    let page = UsersPage {
        layout: layout(&state, &principal, "Users", ""),
        users: users.into_iter().map(UserLine::from).collect(),
        next,
    };
    render(&page, Audience::Private, &headers)
}
