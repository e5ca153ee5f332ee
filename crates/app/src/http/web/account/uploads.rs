//! The visitor's uploads (status, size, dimensions, a thumbnail once the WebP variants exist)
//! and the upload form: a multipart body streamed to storage by the API's own code
//! (`http::uploads::store_file`: size limit, type sniffed from the bytes, nothing kept of a
//! refused file). The form sends its CSRF token first, and it is checked before any file part
//! is read, so a forged post stores nothing.

use askama::Template;
use axum::{
    extract::{FromRequest, Multipart, Query, Request, State},
    http::{HeaderMap, StatusCode, Uri},
    response::Response,
};
use serde::Deserialize;

use super::{FieldErrors, account_layout, bytes, day};
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
        uploads::{StoredFile, UploadResponse, VariantResponse, multipart_error, record_upload, store_file},
    },
    state::AppState,
};

/// An upload as the page shows it.
#[derive(Debug)]
pub struct UploadView {
    pub upload: UploadResponse,
    /// `2 December 2026`.
    pub uploaded: String,
    /// `12.3 KB`.
    pub size: String,
    /// `1920 × 1080 px`, when known.
    pub dimensions: Option<String>,
}

impl UploadView {
    /// The smallest WebP variant, once made: the thumbnail.
    pub fn thumbnail(&self) -> Option<&VariantResponse> {
        self.upload.variants.iter().min_by_key(|variant| variant.width)
    }
}

#[derive(Template)]
#[template(path = "account/uploads.html")]
struct UploadsPage {
    layout: Layout,
    uploads: Vec<UploadView>,
    /// The largest file accepted, `10 MB`.
    limit: String,
    errors: FieldErrors,
}

/// The uploads page's query string.
#[derive(Debug, Default, Deserialize)]
pub struct UploadsQuery {
    /// Set after an upload.
    pub uploaded: Option<String>,
}

/// `limit` bytes in megabytes (binary, as the limit is configured): `10 MB`, `0.1 MB`.
fn megabytes(limit: usize) -> String {
    let text = format!("{:.1}", limit as f64 / (1024.0 * 1024.0));
    format!("{} MB", text.strip_suffix(".0").unwrap_or(&text))
}

async fn uploads_page(
    state: &AppState,
    principal: &Principal,
    errors: FieldErrors,
    notice: Option<&str>,
) -> Result<UploadsPage, PageError> {
    let rows = state
        .media
        .uploads_of(principal.user_id)
        .await
        .map_err(ApiError::from)?;
    let uploads = rows
        .into_iter()
        .map(|row| {
            let uploaded = day(row.created_at);
            let upload = UploadResponse::from(row);
            UploadView {
                uploaded,
                size: bytes(u64::try_from(upload.size_bytes).unwrap_or_default()),
                dimensions: upload
                    .width
                    .zip(upload.height)
                    .map(|(width, height)| format!("{width} × {height} px")),
                upload,
            }
        })
        .collect();
    Ok(UploadsPage {
        layout: account_layout(state, principal, "Your uploads", notice),
        uploads,
        limit: megabytes(state.settings.upload_limit_bytes),
        errors,
    })
}

/// `GET /account/uploads`: the upload form and the visitor's uploads, newest first.
pub async fn show_uploads(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let Query(query) = Query::<UploadsQuery>::try_from_uri(&uri)
        .map_err(|_| PageError::BadRequest("This uploads link is malformed.".to_owned()))?;
    let notice = query
        .uploaded
        .is_some()
        .then_some("Image uploaded. Its sizes for the web are being made.");
    let page = uploads_page(&state, &principal, FieldErrors::default(), notice).await?;
    render(&page, Audience::Private, &headers)
}

/// `POST /account/uploads` (multipart: `csrf`, then `public`, then `file`): stores the image as
/// `POST /api/v1/uploads` does. A refused file is shown on the form with the API's status
/// (413 over the limit, 415 not an image we take).
pub async fn create_upload(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, PageError> {
    let stored = match read_upload_form(&state, &principal, request).await {
        Ok(stored) => stored,
        Err(FormOutcome::Page(error)) => return Err(error),
        Err(FormOutcome::Refused(error)) => return refused(&state, &principal, &headers, error).await,
    };
    let Some((file, public)) = stored else {
        let mut errors = FieldErrors::default();
        errors.add("file", "Choose an image to upload.");
        let page = uploads_page(&state, &principal, errors, None).await?;
        return with_status(&page, StatusCode::BAD_REQUEST, &headers);
    };
    record_upload(&state, principal.user_id, file, public).await?;
    Ok(see_other("/account/uploads?uploaded=1"))
}

/// The refusal of a file over the upload limit: a 413 page naming the limit. The guard answers
/// it too, for a form whose announced body is already too large to read.
pub fn file_too_large(limit_bytes: usize) -> PageError {
    PageError::TooLarge(format!(
        "The file is too large: the limit is {}.",
        megabytes(limit_bytes)
    ))
}

/// Why the upload form was not accepted.
enum FormOutcome {
    /// Not a form of ours (no or a wrong CSRF token, not multipart): an error page.
    Page(PageError),
    /// The file (or a field) was refused: shown on the form.
    Refused(ApiError),
}

impl From<ApiError> for FormOutcome {
    fn from(error: ApiError) -> Self {
        Self::Refused(error)
    }
}

/// Reads the form's parts in order, checking the CSRF token before anything else; returns the
/// stored file and the public flag (`None`: no file was chosen).
async fn read_upload_form(
    state: &AppState,
    principal: &Principal,
    request: Request,
) -> Result<Option<(StoredFile, bool)>, FormOutcome> {
    let mut multipart = Multipart::from_request(request, state).await.map_err(|_| {
        FormOutcome::Page(PageError::BadRequest(
            "This form could not be read. Go back, reload the page and try again.".to_owned(),
        ))
    })?;
    let binding = principal.session_id.as_bytes();
    let mut checked = false;
    let mut public = false;
    let mut stored = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if !checked {
            // Nothing is read, let alone stored, before the token: a forged post is refused here.
            let token = if name == "csrf" {
                field.text().await.map_err(multipart_error)?
            } else {
                String::new()
            };
            csrf::check(state, binding, &token).map_err(FormOutcome::Page)?;
            checked = true;
            continue;
        }
        match name.as_str() {
            // A checked checkbox sends `on`; an unchecked one sends nothing.
            "public" => public = field.text().await.map_err(multipart_error)? == "on",
            // A file input left empty still sends a part, with no file name and no bytes.
            "file" if field.file_name().is_none_or(str::is_empty) => {}
            "file" if stored.is_none() => stored = Some(store_file(state, field).await?),
            _ => {
                return Err(FormOutcome::Page(PageError::BadRequest(
                    "This form has fields we did not expect.".to_owned(),
                )));
            }
        }
    }
    if !checked {
        csrf::check(state, binding, "").map_err(FormOutcome::Page)?;
    }
    Ok(stored.map(|file| (file, public)))
}

/// The uploads page with the refusal next to the file field, and its status.
async fn refused(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    error: ApiError,
) -> Result<Response, PageError> {
    let (status, message) = match error {
        ApiError::PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            file_too_large(state.settings.upload_limit_bytes).to_string(),
        ),
        ApiError::UnsupportedMediaType(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "This file is not an image we accept: choose a PNG, JPEG, GIF or WebP image.".to_owned(),
        ),
        ApiError::Unprocessable(reason) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("This image cannot be used: {reason}."),
        ),
        ApiError::Validation(errors) => (
            StatusCode::BAD_REQUEST,
            errors.first().map_or_else(String::new, |error| {
                format!("{}: {}.", error.field, error.message)
            }),
        ),
        other => return Err(other.into()),
    };
    let mut errors = FieldErrors::default();
    errors.add("file", message);
    let page = uploads_page(state, principal, errors, None).await?;
    with_status(&page, status, headers)
}

fn with_status(page: &UploadsPage, status: StatusCode, headers: &HeaderMap) -> Result<Response, PageError> {
    let mut response = render(page, Audience::Private, headers)?;
    *response.status_mut() = status;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_shown_in_megabytes_without_a_useless_decimal() {
        assert_eq!(megabytes(10 * 1024 * 1024), "10 MB");
        assert_eq!(megabytes(100_000), "0.1 MB");
    }
}
