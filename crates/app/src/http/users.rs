//! `/api/v1/me` and `/api/v1/users`: own account, and users by id for themselves or an admin.
//!
//! Reads by id go through cache-aside (`users` cache), whose entries are the response JSON; a
//! profile update writes the new value through to the cache (here and in the shared tier), so
//! a reader never sees a value older than the write it follows.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    response::Response,
};
use chrono::{DateTime, Utc};
use outgrow_domain::{Password, Role, UserId, UserName};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use super::{
    authn::Principal,
    error::{ApiError, FieldError},
    extract::{ApiJson, ApiQuery},
    paging::{cut_page, page_response, page_size},
    reply::json_bytes,
    responses::{
        InvalidFields, InvalidQuery, NoSuchUser, NotAUserId, NotAdmin, NotOwnAccount, NotSignedIn,
        WrongCurrentPassword,
    },
};
use crate::{caches, repo::User, state::AppState};

/// The routes of this feature (under `/api/v1`).
pub fn router() -> OpenApiRouter<AppState> {
    feature_router![get_me, update_me; list_users; get_user]
}

/// A user as the API shows them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserResponse {
    /// Identifier (UUIDv7: sorts by creation).
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    /// Normalised e-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `user` or `admin`.
    #[schema(value_type = String, example = "user")]
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            role: user.role,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// A user by id as response JSON, through the cache (its entries are the JSON of
/// [`UserResponse`]: a hit is sent as it is stored).
async fn cached_user_json(state: &AppState, id: UserId) -> Result<Option<Bytes>, ApiError> {
    let users = state.users.clone();
    Ok(state
        .cache
        .get_or_load_json(caches::USERS, &id.to_string(), state.user_cache, || async move {
            Ok::<_, crate::repo::StoreError>(users.by_id(id).await?.map(UserResponse::from))
        })
        .await?)
}

/// The signed-in user.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "users",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The signed-in user", body = UserResponse), NotSignedIn)
)]
pub async fn get_me(State(state): State<AppState>, principal: Principal) -> Result<Response, ApiError> {
    let user = cached_user_json(&state, principal.user_id)
        .await?
        .ok_or(ApiError::NotFound("this account no longer exists"))?;
    Ok(json_bytes(user))
}

/// Changes to the signed-in user's account; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// A new display name.
    pub name: Option<String>,
    /// A new password (8 to 128 characters, not the e-mail address, not a common password);
    /// requires `current_password`, and ends every other session.
    #[schema(min_length = 8, max_length = 128)]
    pub password: Option<String>,
    /// The current password, required to set a new one.
    pub current_password: Option<String>,
}

/// Renames the signed-in user and/or changes their password. A password change ends every
/// other session of the user (this one stays signed in).
#[utoipa::path(
    patch, path = "/api/v1/me", tag = "users",
    request_body = UpdateMeRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The updated user", body = UserResponse),
        WrongCurrentPassword, InvalidFields, NotSignedIn,
    )
)]
pub async fn update_me(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<UpdateMeRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    Ok(Json(update_profile(&state, &principal, &request).await?))
}

/// The fields of a profile update, checked (every invalid field reported at once): the new
/// name and the new password, each when given. The password is checked again against the
/// account's e-mail address once the account is read.
pub(crate) fn check_profile_update(
    request: &UpdateMeRequest,
) -> Result<(Option<UserName>, Option<Password>), ApiError> {
    let mut errors = Vec::new();
    let name = request.name.as_deref().map(UserName::parse).transpose();
    let name = FieldError::collect("name", name, &mut errors).flatten();
    let new_password = match (&request.password, &request.current_password) {
        (Some(_), None) => {
            errors.push(FieldError::new(
                "current_password",
                "is required to change the password",
            ));
            None
        }
        (Some(password), Some(_)) => {
            FieldError::collect("password", Password::parse(password, None), &mut errors)
        }
        (None, _) => None,
    };
    if request.name.is_none() && request.password.is_none() {
        errors.push(FieldError::new("name", "give a name or a password to change"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok((name, new_password))
}

/// A profile update, shared by the API and the account page: the fields are checked, a new
/// password needs the current one (and ends every other session), and the new value is written
/// through to the `users` cache.
pub async fn update_profile(
    state: &AppState,
    principal: &Principal,
    request: &UpdateMeRequest,
) -> Result<UserResponse, ApiError> {
    let (name, new_password) = check_profile_update(request)?;
    let now = Utc::now();
    let mut updated = None;
    if let (Some(new_password), Some(current)) = (new_password, &request.current_password) {
        let credentials = state
            .users
            .credentials_by_id(principal.user_id)
            .await?
            .ok_or(ApiError::NotFound("this account no longer exists"))?;
        if let Err(message) = Password::parse(
            new_password.expose(),
            Some(&parse_stored_email(&credentials.user)?),
        ) {
            return Err(ApiError::invalid("password", message));
        }
        if !state
            .passwords
            .verify(current, Some(&credentials.password_hash))
            .await?
        {
            return Err(ApiError::Forbidden("the current password is wrong"));
        }
        let hash = state.passwords.hash(new_password).await?;
        updated = state.users.update_password(principal.user_id, &hash, now).await?;
        let ended = state
            .sessions
            .revoke_all(principal.user_id, Some(principal.session_id), now)
            .await?;
        tracing::info!(user_id = %principal.user_id, other_sessions_ended = ended.len(), "password changed");
    }
    if let Some(name) = name {
        updated = state.users.update_name(principal.user_id, &name, now).await?;
    }
    let Some(user) = updated else {
        state
            .cache
            .invalidate(caches::USERS, &principal.user_id.to_string())
            .await;
        return Err(ApiError::NotFound("this account no longer exists"));
    };
    let user = UserResponse::from(user);
    // Write-through: the next read, here or on another instance, is a hit with the new value.
    state
        .cache
        .put(caches::USERS, &user.id.to_string(), state.user_cache, &user)
        .await;
    Ok(user)
}

fn parse_stored_email(user: &User) -> Result<outgrow_domain::Email, ApiError> {
    outgrow_domain::Email::parse(&user.email)
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("stored e-mail: {error}")))
}

/// A user by id: the user themself, or anyone for an admin.
#[utoipa::path(
    get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = uuid::Uuid, Path, description = "User id (UUID)")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "The user", body = UserResponse), NotAUserId, NotOwnAccount, NoSuchUser, NotSignedIn)
)]
pub async fn get_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = UserId::parse(&id).map_err(|error| ApiError::invalid("id", error))?;
    // Authorisation before lookup: a non-admin learns nothing about other ids, existing or not.
    if !principal.may_access(id) {
        return Err(ApiError::Forbidden("you may only read your own account"));
    }
    let user = cached_user_json(&state, id)
        .await?
        .ok_or(ApiError::NotFound("no user with this id"))?;
    Ok(json_bytes(user))
}

/// Keyset pagination.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Return users after this id (the `next_after` of the previous page).
    #[param(value_type = Option<uuid::Uuid>)]
    pub after: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// One page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// Users in id (creation) order.
    pub items: Vec<UserResponse>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub next_after: Option<UserId>,
}

/// Every user, in creation order, a page at a time (admins only).
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users",
    params(ListUsersQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "A page of users; `Link: rel=next` points to the next", body = UserPage),
        InvalidQuery, NotSignedIn, NotAdmin,
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListUsersQuery>,
) -> Result<Response, ApiError> {
    principal.require_admin("listing users is for admins")?;
    let limit = page_size(query.limit)?;
    let after = query
        .after
        .as_deref()
        .map(UserId::parse)
        .transpose()
        .map_err(|error| ApiError::invalid("after", error))?;
    let mut users = state.users.list(after, limit + 1).await?;
    let next_after = cut_page(&mut users, limit, |user| user.id);
    let page = UserPage {
        items: users.into_iter().map(UserResponse::from).collect(),
        next_after,
    };
    let next = next_after.map(|next| format!("/api/v1/users?after={next}&limit={limit}"));
    Ok(page_response(page, next))
}
