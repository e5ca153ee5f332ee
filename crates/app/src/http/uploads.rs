//! `/api/v1/uploads`: images streamed to object storage, WebP variants made by a job, and
//! authorised downloads with `ETag` and cache headers.

use axum::{
    Json,
    body::Body,
    extract::{FromRequest, Multipart, Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use futures::TryStreamExt;
use outgrow_domain::{UploadId, UploadStatus};
use outgrow_platform::jobs::Job;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use super::{
    authn::{Authentication, Principal},
    error::ApiError,
    extract::path_uuid,
    reply::{etag_matches, located},
    responses::{
        NoFilePart, NoReadableUpload, NotAnImage, NotFound, UnreadableImage, UploadTooLarge, UploadUnchanged,
    },
};
use crate::{
    db::media::UploadRow,
    images,
    jobs::MakeImageVariants,
    objects::{original_key, variant_key},
    repo::StoreError,
    state::AppState,
};

/// The routes of this feature (under `/api/v1/uploads`).
pub fn router() -> OpenApiRouter<AppState> {
    feature_router![create_upload; get_upload; download_upload; download_variant]
}

/// Bytes kept from the start of a file to sniff its type and read its dimensions (a JPEG's
/// size can follow a large EXIF block).
const HEAD_BYTES: usize = 256 * 1024;

/// An upload as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResponse {
    /// Identifier.
    pub id: Uuid,
    /// `processing` (variants being made), `ready` or `failed`.
    pub status: UploadStatus,
    /// Sniffed from the bytes: image/png, image/jpeg, image/gif or image/webp.
    pub content_type: String,
    /// Size of the original.
    pub size_bytes: i64,
    /// Pixels.
    pub width: Option<i64>,
    /// Pixels.
    pub height: Option<i64>,
    /// Readable by anyone.
    pub public: bool,
    /// The original.
    pub url: String,
    /// WebP renditions, narrowest first.
    pub variants: Vec<VariantResponse>,
    /// `url 400w, url 800w, …`, ready for an `<img srcset>`.
    pub srcset: String,
    /// Why processing failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One WebP rendition.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariantResponse {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Encoded size.
    pub bytes: u64,
    /// Where to get it.
    pub url: String,
}

impl From<UploadRow> for UploadResponse {
    fn from(row: UploadRow) -> Self {
        let base = format!("/api/v1/uploads/{}", row.id);
        let variants: Vec<VariantResponse> = row
            .variants
            .0
            .iter()
            .map(|variant| VariantResponse {
                width: variant.width,
                height: variant.height,
                bytes: variant.bytes,
                url: format!("{base}/variants/{}", variant.width),
            })
            .collect();
        let srcset = variants
            .iter()
            .map(|v| format!("{} {}w", v.url, v.width))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            id: row.id.0,
            status: row.status,
            content_type: row.content_type,
            size_bytes: row.size_bytes,
            width: row.width,
            height: row.height,
            public: row.public,
            url: format!("{base}/content"),
            variants,
            srcset,
            error: row.error,
        }
    }
}

/// Uploads an image (multipart/form-data: a `file` part, and optionally `public=true`).
/// The body is streamed to storage as it arrives; its type is decided by its bytes.
#[utoipa::path(
    post, path = "/api/v1/uploads", tag = "uploads",
    security(("bearer" = []), ("cookie" = [])),
    request_body(content_type = "multipart/form-data", description = "`file`: the image; `public`: `true` to let anyone read it"),
    responses(
        (status = 201, description = "Stored; variants are being made", body = UploadResponse),
        NoFilePart, UploadTooLarge, NotAnImage, UnreadableImage,
    )
)]
pub async fn create_upload(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> Result<Response, ApiError> {
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|rejection| {
            ApiError::BadRequest(format!(
                "expected a multipart/form-data body: {}",
                rejection.body_text()
            ))
        })?;
    let mut public = false;
    let mut stored: Option<(UploadId, String, i64, (u32, u32))> = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("public") => {
                public = public_flag(&field.text().await.map_err(multipart_error)?)?;
            }
            Some("file") if stored.is_none() => stored = Some(store_file(&state, field).await?),
            Some("file") => return Err(ApiError::invalid("file", "send one file per upload")),
            other => {
                return Err(ApiError::invalid(
                    other.unwrap_or("(unnamed)"),
                    "unknown part; send `file` and optionally `public`",
                ));
            }
        }
    }
    let Some(stored) = stored else {
        return Err(ApiError::invalid("file", "a `file` part is required"));
    };
    let row = record_upload(&state, principal.user_id, stored, public).await?;
    located(
        StatusCode::CREATED,
        &format!("/api/v1/uploads/{}", row.id),
        UploadResponse::from(row),
    )
}

/// A file [`store_file`] has written: (id, sniffed type, size, dimensions).
pub type StoredFile = (UploadId, String, i64, (u32, u32));

/// Records a stored file as `owner`'s upload, `processing`, with the job that makes its WebP
/// variants (in one transaction). The API's `POST /api/v1/uploads` and the pages' upload
/// forms share it.
pub async fn record_upload(
    state: &AppState,
    owner: outgrow_domain::UserId,
    stored: StoredFile,
    public: bool,
) -> Result<UploadRow, ApiError> {
    let (id, content_type, size, (width, height)) = stored;
    let now = Utc::now();
    let row = UploadRow {
        id,
        owner_id: owner,
        content_type,
        size_bytes: size,
        width: Some(i64::from(width)),
        height: Some(i64::from(height)),
        public,
        status: UploadStatus::Processing,
        variants: sqlx::types::Json(Vec::new()),
        error: None,
        created_at: now,
        updated_at: now,
    };
    let job = MakeImageVariants { upload_id: id }
        .to_new_job()
        .map_err(anyhow::Error::from)?;
    state.media.insert_upload(&row, &[job]).await?;
    tracing::info!(upload_id = %id, size, width, height, "upload stored; variants queued");
    Ok(row)
}

/// A multipart body that could not be read: 413 past the body limit, else 400.
pub fn multipart_error(error: axum::extract::multipart::MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {}", error.body_text()))
    }
}

/// Streams one `file` part to storage under a fresh key, sniffing its type and reading its
/// dimensions on the way (size and pixel limits enforced, nothing kept of a refused file).
pub async fn store_file(
    state: &AppState,
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<StoredFile, ApiError> {
    let id = UploadId::new();
    let limit = state.settings.upload_limit_bytes;
    let mut writer = state
        .storage
        .writer(&original_key(id))
        .await
        .map_err(storage_error)?;
    let mut inspector = FileInspector::new(limit);
    let outcome = async {
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            inspector.push(&chunk)?;
            writer.put(chunk);
        }
        inspector.finish(state.settings.upload_max_pixels)
    }
    .await;
    match outcome {
        Ok(Inspected {
            content_type,
            size,
            dimensions,
        }) => {
            writer.finish().await.map_err(storage_error)?;
            Ok((id, content_type.to_owned(), size as i64, dimensions))
        }
        Err(error) => {
            // Nothing of a refused upload is kept.
            let _ = writer.abort().await;
            Err(error)
        }
    }
}

/// The `public` part of an upload form.
pub(crate) fn public_flag(text: &str) -> Result<bool, ApiError> {
    match text.trim() {
        "true" | "1" | "on" => Ok(true),
        "false" | "0" | "off" | "" => Ok(false),
        _ => Err(ApiError::invalid("public", "must be true or false")),
    }
}

/// What is learnt of a file while it streams by: its size (refused past the limit), its type
/// from its first bytes, and its dimensions from the header kept in the first [`HEAD_BYTES`].
#[derive(Debug)]
pub(crate) struct FileInspector {
    limit: usize,
    head: Vec<u8>,
    size: usize,
    content_type: Option<&'static str>,
}

/// A file that passed [`FileInspector`]: sniffed type, size in bytes, (width, height).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Inspected {
    pub content_type: &'static str,
    pub size: usize,
    pub dimensions: (u32, u32),
}

impl FileInspector {
    /// An inspector refusing files over `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            head: Vec::new(),
            size: 0,
            content_type: None,
        }
    }

    /// Takes the next chunk: 413 once past the limit, 415 as soon as 16 bytes are not an image.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.size += chunk.len();
        if self.size > self.limit {
            return Err(ApiError::PayloadTooLarge);
        }
        if self.head.len() < HEAD_BYTES {
            let take = chunk.len().min(HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        if self.content_type.is_none() && self.head.len() >= 16 {
            self.content_type = Some(images::sniff(&self.head).ok_or_else(unsupported)?);
        }
        Ok(())
    }

    /// The verdict once the file has ended: its type and dimensions, at most `max_pixels`.
    pub(crate) fn finish(self, max_pixels: u64) -> Result<Inspected, ApiError> {
        let content_type = match self.content_type {
            Some(found) => found,
            None => images::sniff(&self.head).ok_or_else(unsupported)?,
        };
        let (width, height) = images::dimensions(&self.head).ok_or_else(|| {
            ApiError::Unprocessable("the image header cannot be read or declares no pixels".into())
        })?;
        if u64::from(width) * u64::from(height) > max_pixels {
            return Err(ApiError::Unprocessable(format!(
                "{width}×{height} pixels is over the limit of {max_pixels} pixels"
            )));
        }
        Ok(Inspected {
            content_type,
            size: self.size,
            dimensions: (width, height),
        })
    }
}

fn unsupported() -> ApiError {
    ApiError::UnsupportedMediaType(
        "only PNG, JPEG, GIF and WebP images are accepted (judged by the file's bytes)".into(),
    )
}

fn storage_error(error: object_store::Error) -> ApiError {
    ApiError::Unavailable(format!("object storage: {error}"))
}

/// The caller from the authentication middleware: `None` when anonymous; a refused
/// credential is a 401 even where anonymous access would be allowed.
fn caller(request_auth: Option<&Authentication>) -> Result<Option<&Principal>, ApiError> {
    match request_auth {
        Some(Authentication::Authenticated(principal)) => Ok(Some(principal)),
        Some(Authentication::Rejected(reason)) => Err(ApiError::Unauthorized(reason)),
        Some(Authentication::Anonymous) | None => Ok(None),
    }
}

/// The upload if the caller may read it: public, its owner, or an admin. Otherwise 404, so
/// private uploads cannot be probed.
async fn readable(
    state: &AppState,
    id: &str,
    headers_auth: Option<&Authentication>,
) -> Result<UploadRow, ApiError> {
    let caller = caller(headers_auth)?;
    let id = path_uuid(id, "an upload id")?;
    let row = state
        .media
        .upload(UploadId(id))
        .await?
        .ok_or(ApiError::NotFound("no such upload"))?;
    let allowed = row.public || caller.is_some_and(|principal| principal.may_access(row.owner_id));
    if allowed {
        Ok(row)
    } else {
        Err(ApiError::NotFound("no such upload"))
    }
}

/// An upload's status and the URLs of its variants.
#[utoipa::path(
    get, path = "/api/v1/uploads/{id}", tag = "uploads",
    params(("id" = uuid::Uuid, Path, description = "Upload id")),
    responses((status = 200, body = UploadResponse), NoReadableUpload)
)]
pub async fn get_upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<UploadResponse>, ApiError> {
    let row = readable(&state, &id, request.extensions().get::<Authentication>()).await?;
    Ok(Json(row.into()))
}

/// The original file.
#[utoipa::path(
    get, path = "/api/v1/uploads/{id}/content", tag = "uploads",
    params(("id" = uuid::Uuid, Path, description = "Upload id")),
    responses((status = 200, description = "The bytes, with Content-Type, ETag and Cache-Control"), UploadUnchanged, NotFound)
)]
pub async fn download_upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let row = readable(&state, &id, request.extensions().get::<Authentication>()).await?;
    serve_object(&state, &row, None, request.headers()).await
}

/// One WebP variant.
#[utoipa::path(
    get, path = "/api/v1/uploads/{id}/variants/{width}", tag = "uploads",
    params(("id" = uuid::Uuid, Path, description = "Upload id"), ("width" = u32, Path, description = "Variant width")),
    responses((status = 200, description = "image/webp, with ETag and Cache-Control"), UploadUnchanged, NotFound)
)]
pub async fn download_variant(
    State(state): State<AppState>,
    Path((id, width)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let row = readable(&state, &id, request.extensions().get::<Authentication>()).await?;
    let width: u32 = width
        .parse()
        .map_err(|_| ApiError::invalid("width", "must be a whole number"))?;
    if !row.variants.0.iter().any(|variant| variant.width == width) {
        return Err(ApiError::NotFound("no variant of this width (yet)"));
    }
    serve_object(&state, &row, Some(width), request.headers()).await
}

/// Streams the original of an upload (`width: None`) or its WebP variant of `width`, with its
/// validators. Objects never change under their key, so the ETag is derived from the key and a
/// public one may be cached for a year.
async fn serve_object(
    state: &AppState,
    row: &UploadRow,
    width: Option<u32>,
    request_headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (key, content_type, etag) = match width {
        None => (
            original_key(row.id),
            row.content_type.as_str(),
            format!("\"{}\"", row.id.0.simple()),
        ),
        Some(width) => (
            variant_key(row.id, width),
            "image/webp",
            format!("\"{}-w{width}\"", row.id.0.simple()),
        ),
    };
    let cache_control = if row.public {
        "public, max-age=31536000, immutable"
    } else {
        "private, max-age=3600"
    };
    let etag_value = HeaderValue::from_str(&etag).map_err(anyhow::Error::from)?;
    if etag_matches(request_headers, &etag) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag_value),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache_control)),
            ],
        )
            .into_response());
    }
    let object = state
        .storage
        .get(&key)
        .await
        .map_err(storage_error)?
        .ok_or(ApiError::NotFound("the file is missing from storage"))?;
    let size = object.meta.size;
    let stream = object.into_stream().map_err(std::io::Error::other);
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).map_err(anyhow::Error::from)?,
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::ETAG, etag_value);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
    Ok(response)
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(error).into()
    }
}
