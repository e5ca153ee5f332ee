//! `/api/v1/exports`: a user's data as CSV or JSON, built by a job and delivered by a
//! time-limited signed link (e-mailed, and shown here once ready).

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use outgrow_domain::{ExportId, ExportStatus};
use outgrow_platform::jobs::Job;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use super::{
    authn::Principal,
    error::ApiError,
    extract::{ApiJson, ApiQuery, path_uuid},
    reply::located,
    responses::{BadSignature, ExportRateLimited, Invalid, NoSuchExport, NotFound},
};
use crate::{db::media::ExportRow, jobs::BuildExport, links, objects, state::AppState};

/// The routes of this feature: creating an export (limited by the strict `export` rate
/// policy, see `stack::RouteGroup`), reading it, and the signed download (no credential: the
/// signature is the capability).
pub fn router() -> OpenApiRouter<AppState> {
    feature_router![create_export; get_export; download_export]
}

/// What to export.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExportRequest {
    /// `csv` or `json`.
    #[schema(pattern = "^(csv|json)$")]
    pub format: String,
}

/// An export's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportResponse {
    /// Identifier.
    pub id: Uuid,
    /// `csv` or `json`.
    pub format: String,
    /// `pending`, `ready` or `failed`.
    pub status: ExportStatus,
    /// Size of the file once ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// A signed link, valid until `download_expires_at`, once ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    /// When `download_url` stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_expires_at: Option<DateTime<Utc>>,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
}

/// A refused download link is a 403: the link is the only credential, and it is not valid.
impl From<links::LinkError> for ApiError {
    fn from(error: links::LinkError) -> Self {
        Self::Forbidden(error.message())
    }
}

/// An export as the API (and the exports page) shows it: with a fresh signed link once ready.
pub fn export_response(state: &AppState, row: ExportRow) -> ExportResponse {
    let link = (row.status == ExportStatus::Ready).then(|| links::export_link(state, row.id, Utc::now()));
    ExportResponse {
        id: row.id.0,
        format: row.format,
        status: row.status,
        size_bytes: row.size_bytes,
        download_url: link.as_ref().map(|(url, _)| url.clone()),
        download_expires_at: link.map(|(_, expires)| expires),
        created_at: row.created_at,
    }
}

/// Requests an export of the caller's data; 202 at once, the file is built by a job and a link
/// is e-mailed when it is ready. Limited to `rate_limit_export` per user.
#[utoipa::path(
    post, path = "/api/v1/exports", tag = "exports",
    request_body = CreateExportRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 202, description = "Accepted; poll `Location`", body = ExportResponse), ExportRateLimited, Invalid)
)]
pub async fn create_export(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateExportRequest>,
) -> Result<Response, ApiError> {
    let row = request_export(&state, &principal, request.format).await?;
    let location = format!("/api/v1/exports/{}", row.id);
    located(StatusCode::ACCEPTED, &location, export_response(&state, row))
}

/// An export's format, checked: `csv` or `json`.
pub(crate) fn check_format(format: String) -> Result<String, ApiError> {
    match format.as_str() {
        "csv" | "json" => Ok(format),
        _ => Err(ApiError::invalid("format", "must be csv or json")),
    }
}

/// Records an export of the caller's data in `format` (`csv` or `json`) with the job that
/// builds it, shared by the API and the exports page (both behind the `export` rate policy).
pub async fn request_export(
    state: &AppState,
    principal: &Principal,
    format: String,
) -> Result<ExportRow, ApiError> {
    let format = check_format(format)?;
    let row = ExportRow {
        id: ExportId::new(),
        user_id: principal.user_id,
        format,
        status: ExportStatus::Pending,
        size_bytes: None,
        error: None,
        created_at: Utc::now(),
        finished_at: None,
    };
    let job = BuildExport { export_id: row.id }
        .to_new_job()
        .map_err(anyhow::Error::from)?;
    state.media.insert_export(&row, &[job]).await?;
    Ok(row)
}

/// An export's status, with a fresh signed link once ready (owner or admin).
#[utoipa::path(
    get, path = "/api/v1/exports/{id}", tag = "exports",
    params(("id" = uuid::Uuid, Path, description = "Export id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ExportResponse), NoSuchExport)
)]
pub async fn get_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ExportResponse>, ApiError> {
    let id = ExportId(path_uuid(&id, "an export id")?);
    let row = state
        .media
        .export(id)
        .await?
        .filter(|row| principal.may_access(row.user_id))
        .ok_or(ApiError::NotFound("no such export"))?;
    Ok(Json(export_response(&state, row)))
}

/// The signature of a download link.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// Unix time the link stops working.
    pub expires: i64,
    /// HMAC-SHA256 of the export id and `expires`, hex.
    pub signature: String,
}

/// Downloads an export through its signed link.
#[utoipa::path(
    get, path = "/api/v1/exports/{id}/download", tag = "exports",
    params(("id" = uuid::Uuid, Path, description = "Export id"), DownloadQuery),
    responses((status = 200, description = "The file (attachment)"), BadSignature, NotFound)
)]
pub async fn download_export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DownloadQuery>,
) -> Result<Response, ApiError> {
    let id = ExportId(path_uuid(&id, "an export id")?);
    links::verify_export_link(&state, id, query.expires, &query.signature, Utc::now())?;
    let row = state
        .media
        .export(id)
        .await?
        .filter(|row| row.status == ExportStatus::Ready)
        .ok_or(ApiError::NotFound("no such export"))?;
    let object = state
        .storage
        .get(&objects::export_key(&row))
        .await
        .map_err(|error| ApiError::Unavailable(format!("object storage: {error}")))?
        .ok_or(ApiError::NotFound("the export file is gone"))?;
    let (content_type, extension) = if row.format == "csv" {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/json", "json")
    };
    let size = object.meta.size;
    let mut response = Response::new(Body::from_stream(
        object.into_stream().map_err(std::io::Error::other),
    ));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    let disposition = format!("attachment; filename=\"outgrow-export-{}.{extension}\"", row.id);
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(anyhow::Error::from)?,
    );
    Ok(response)
}
