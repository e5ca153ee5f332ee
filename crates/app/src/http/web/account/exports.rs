//! Data exports: the form that requests one (the API's request, behind the same `export` rate
//! policy), and the visitor's recent exports with their status and, once ready, a fresh signed
//! download link (as `GET /api/v1/exports/{id}` shows it).

use askama::Template;
use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
};
use serde::Deserialize;

use super::{FieldErrors, PageForm, account_layout, bytes, day};
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
        exports::{ExportResponse, export_response, request_export},
    },
    state::AppState,
};

/// An export as the page shows it.
#[derive(Debug)]
pub struct ExportView {
    pub export: ExportResponse,
    /// `2 December 2026`.
    pub requested: String,
    /// `12.3 KB`, once ready.
    pub size: Option<String>,
}

#[derive(Template)]
#[template(path = "account/exports.html")]
struct ExportsPage {
    layout: Layout,
    exports: Vec<ExportView>,
    /// The format in the form.
    format: String,
    errors: FieldErrors,
}

/// The exports page's query string.
#[derive(Debug, Default, Deserialize)]
pub struct ExportsQuery {
    /// Set after a request.
    pub requested: Option<String>,
}

/// The export form as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExportForm {
    /// `csv` or `json`.
    pub format: String,
    pub csrf: String,
}

async fn exports_page(
    state: &AppState,
    principal: &Principal,
    format: String,
    errors: FieldErrors,
    notice: Option<&str>,
) -> Result<ExportsPage, PageError> {
    let rows = state
        .media
        .exports_of(principal.user_id)
        .await
        .map_err(ApiError::from)?;
    let exports = rows
        .into_iter()
        .map(|row| {
            let requested = day(row.created_at);
            let export = export_response(state, row);
            let size = export
                .size_bytes
                .map(|size| bytes(u64::try_from(size).unwrap_or_default()));
            ExportView {
                export,
                requested,
                size,
            }
        })
        .collect();
    Ok(ExportsPage {
        layout: account_layout(state, principal, "Your data exports", notice),
        exports,
        format,
        errors,
    })
}

/// `GET /account/exports`: the request form and the recent exports.
pub async fn show_exports(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let Query(query) = Query::<ExportsQuery>::try_from_uri(&uri)
        .map_err(|_| PageError::BadRequest("This exports link is malformed.".to_owned()))?;
    let notice = query
        .requested
        .is_some()
        .then_some("Export requested. We will e-mail you a link when it is ready.");
    let page = exports_page(
        &state,
        &principal,
        "csv".to_owned(),
        FieldErrors::default(),
        notice,
    )
    .await?;
    render(&page, Audience::Private, &headers)
}

/// `POST /account/exports`: requests an export as `POST /api/v1/exports` does.
pub async fn create_export(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    headers: HeaderMap,
    PageForm(form): PageForm<ExportForm>,
) -> Result<Response, PageError> {
    csrf::check(&state, principal.session_id.as_bytes(), &form.csrf)?;
    match request_export(&state, &principal, form.format.clone()).await {
        Ok(_) => Ok(see_other("/account/exports?requested=1")),
        Err(ApiError::Validation(_)) => {
            let mut errors = FieldErrors::default();
            errors.add("format", "Choose CSV or JSON.");
            let page = exports_page(&state, &principal, form.format, errors, None).await?;
            let mut response = render(&page, Audience::Private, &headers)?;
            *response.status_mut() = StatusCode::BAD_REQUEST;
            Ok(response)
        }
        Err(other) => Err(other.into()),
    }
}
