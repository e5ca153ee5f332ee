//! The product form's posts (`multipart/form-data`: `csrf` first, then the fields, then an
//! optional image). The CSRF token is checked before anything else is read; the typed fields
//! are checked before the image is stored, so a refused form keeps no file. The image is
//! streamed to storage by the API's upload code (limits, type sniffed from the bytes, the
//! variants job), stored public (the catalog is), and the product is written by the API's
//! product code (validation, image check, catalog version, caches).

use axum::{
    extract::{
        Multipart, Path, State,
        multipart::{Field, MultipartRejection},
    },
    http::{HeaderMap, StatusCode},
    response::Response,
};

use super::products::{ProductFields, ProductFormPage, existing_product};
use crate::{
    http::web::{
        csrf,
        error::PageError,
        page::{Audience, parse_price, render, see_other},
        visitor::Admin,
    },
    http::{
        authn::Principal,
        error::{ApiError, FieldError},
        products::{
            CreateProductRequest, UpdateProductRequest, change_product, check_new_product, insert_product,
        },
        uploads::{StoredFile, multipart_error, record_upload, store_file},
    },
    state::AppState,
    store::catalog::ProductRow,
};

/// Messages per form field.
type FormErrors = Vec<(&'static str, String)>;

/// `POST /admin/products`: creates a product (and stores its image).
pub async fn create_product(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    save_product(&state, &principal, &headers, None, multipart).await
}

/// `POST /admin/products/{id}`: changes a product (and replaces its image when one is sent).
pub async fn update_product(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let row = existing_product(&state, &id).await?;
    save_product(&state, &principal, &headers, Some(row), multipart).await
}

/// What reading the form ended with.
enum Outcome {
    /// Every field read; the image stored if one was sent.
    Read(CreateProductRequest, Option<StoredFile>),
    /// Refused: the messages, and the status to answer.
    Refused(FormErrors, StatusCode),
}

/// Reads the form, stores its image, writes the product: 303 to its edit page, or the form
/// again with the messages next to the fields.
async fn save_product(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    existing: Option<ProductRow>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let mut multipart = multipart
        .map_err(|_| PageError::BadRequest("This form must be sent as multipart/form-data.".to_owned()))?;
    let mut fields = ProductFields::default();
    let (errors, status) = match read_form(state, principal, &mut multipart, &mut fields).await? {
        Outcome::Refused(errors, status) => (errors, status),
        Outcome::Read(request, stored) => {
            match write_product(state, principal, existing.as_ref(), request, stored).await {
                Ok(id) => return Ok(see_other(&format!("/admin/products/{id}?saved=1"))),
                Err(ApiError::Validation(errors)) => (page_errors(errors), StatusCode::BAD_REQUEST),
                Err(other) => return Err(other.into()),
            }
        }
    };
    let page = ProductFormPage::build(state, principal, existing.as_ref(), fields, errors).await?;
    let mut response = render(&page, Audience::Private, headers)?;
    *response.status_mut() = status;
    Ok(response)
}

/// Reads the parts in order: the CSRF token (checked at once), the typed fields into `fields`,
/// then the image, stored only when the fields are valid.
async fn read_form(
    state: &AppState,
    principal: &Principal,
    multipart: &mut Multipart,
    fields: &mut ProductFields,
) -> Result<Outcome, PageError> {
    let token = match multipart.next_field().await.map_err(form_error)? {
        Some(field) if field.name() == Some("csrf") => text(field).await?,
        _ => String::new(),
    };
    csrf::check(state, principal.session_id.as_bytes(), &token)?;
    let mut stored = None;
    while let Some(mut field) = multipart.next_field().await.map_err(form_error)? {
        let slot = match field.name() {
            Some("name") => &mut fields.name,
            Some("description") => &mut fields.description,
            Some("price") => &mut fields.price,
            Some("currency") => &mut fields.currency,
            Some("stock") => &mut fields.stock,
            Some("image") => {
                // A browser sends an empty, nameless file part when none was chosen.
                if field.file_name().is_none_or(str::is_empty) || stored.is_some() {
                    drain(&mut field).await?;
                    continue;
                }
                if let Err(errors) = checked_request(fields) {
                    // Read to the end so the browser sees the answer rather than a reset.
                    drain(&mut field).await?;
                    return Ok(Outcome::Refused(errors, StatusCode::BAD_REQUEST));
                }
                match store_file(state, field).await {
                    Ok(file) => stored = Some(file),
                    Err(error) => {
                        let status = error.status();
                        return Ok(Outcome::Refused(
                            vec![("image", image_message(state, error)?)],
                            status,
                        ));
                    }
                }
                continue;
            }
            _ => {
                return Err(PageError::BadRequest(
                    "This form has a field it should not have.".to_owned(),
                ));
            }
        };
        *slot = text(field).await?;
    }
    Ok(match checked_request(fields) {
        Ok(request) => Outcome::Read(request, stored),
        Err(errors) => Outcome::Refused(errors, StatusCode::BAD_REQUEST),
    })
}

/// Records the stored image (public: the catalog is) and creates or changes the product with
/// the API's code; returns the product's id.
async fn write_product(
    state: &AppState,
    principal: &Principal,
    existing: Option<&ProductRow>,
    request: CreateProductRequest,
    stored: Option<StoredFile>,
) -> Result<uuid::Uuid, ApiError> {
    let image_id = match stored {
        Some(file) => Some(record_upload(state, principal.user_id, file, true).await?.id.0),
        None => None,
    };
    let row = match existing {
        None => insert_product(state, &CreateProductRequest { image_id, ..request }).await?,
        Some(row) => {
            let patch = UpdateProductRequest {
                name: Some(request.name),
                description: Some(request.description),
                price_minor: Some(request.price_minor),
                currency: Some(request.currency),
                stock: Some(request.stock),
                image_id: image_id.map(Some),
            };
            change_product(state, row.id, &patch).await?
        }
    };
    Ok(row.id)
}

/// The typed fields as the API's request, checked by the API's rules; a price or a stock that
/// is not a number is refused here first.
fn checked_request(fields: &ProductFields) -> Result<CreateProductRequest, FormErrors> {
    let mut errors = Vec::new();
    let price = parse_price(&fields.price);
    if price.is_none() {
        errors.push(("price", "Enter a price like 12 or 12.50.".to_owned()));
    }
    let stock = fields.stock.trim().parse::<i64>().ok();
    if stock.is_none() {
        errors.push(("stock", "Enter a whole number of units, 0 or more.".to_owned()));
    }
    let request = CreateProductRequest {
        name: fields.name.clone(),
        description: fields.description.clone(),
        // Valid stand-ins, so the other fields are still checked.
        price_minor: price.unwrap_or(0),
        currency: fields.currency.trim().to_owned(),
        stock: stock.unwrap_or(0),
        image_id: None,
    };
    if let Err(refused) = check_new_product(&request) {
        errors.extend(page_errors(refused));
    }
    if errors.is_empty() {
        Ok(request)
    } else {
        Err(errors)
    }
}

/// The API's field errors under the form's names, as sentences.
fn page_errors(errors: Vec<FieldError>) -> FormErrors {
    errors
        .into_iter()
        .map(|error| {
            let field = match error.field.as_str() {
                "name" => "name",
                "description" => "description",
                "currency" => "currency",
                "stock" => "stock",
                "image_id" => "image",
                _ => "price",
            };
            (field, sentence(&error.message))
        })
        .collect()
}

/// `must be …` → `Must be ….`
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let first = chars.next().map(|first| first.to_uppercase().collect::<String>());
    let mut text = first.unwrap_or_default() + chars.as_str();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}

/// What to say next to the image field when it was refused; failures that are not the file's
/// (storage down) become the error page.
fn image_message(state: &AppState, error: ApiError) -> Result<String, PageError> {
    Ok(match error {
        ApiError::PayloadTooLarge => format!(
            "The image is larger than the limit of {} MB.",
            state.settings.upload_limit_bytes / 1_000_000
        ),
        ApiError::UnsupportedMediaType(text) | ApiError::Unprocessable(text) | ApiError::BadRequest(text) => {
            sentence(&text)
        }
        ApiError::Validation(errors) => errors
            .first()
            .map(|error| sentence(&error.message))
            .unwrap_or_default(),
        other => return Err(other.into()),
    })
}

/// A text part.
async fn text(field: Field<'_>) -> Result<String, PageError> {
    field.text().await.map_err(form_error)
}

/// Reads a part to its end, keeping nothing.
async fn drain(field: &mut Field<'_>) -> Result<(), PageError> {
    while field.chunk().await.map_err(form_error)?.is_some() {}
    Ok(())
}

/// A body that could not be read as a form.
fn form_error(error: axum::extract::multipart::MultipartError) -> PageError {
    match multipart_error(error) {
        ApiError::PayloadTooLarge => {
            PageError::BadRequest("This form is larger than the upload limit.".to_owned())
        }
        _ => PageError::BadRequest("This form could not be read. Go back and try again.".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apis_messages_become_sentences() {
        assert_eq!(sentence("must be 0 to 10"), "Must be 0 to 10.");
        assert_eq!(sentence("Done."), "Done.");
    }

    #[test]
    fn typed_fields_are_checked_by_the_apis_rules_and_every_bad_one_is_named() {
        let fields = ProductFields {
            name: String::new(),
            description: "fine".to_owned(),
            price: "12,50".to_owned(),
            currency: "EURO".to_owned(),
            stock: "many".to_owned(),
        };
        let errors = checked_request(&fields).expect_err("refused");
        let named: Vec<&str> = errors.iter().map(|(field, _)| *field).collect();
        for field in ["name", "price", "currency", "stock"] {
            assert!(named.contains(&field), "{field} in {named:?}");
        }
        let good = ProductFields {
            name: "Mug".to_owned(),
            price: "12.5".to_owned(),
            currency: "EUR".to_owned(),
            stock: "3".to_owned(),
            ..fields
        };
        let request = checked_request(&good).expect("accepted");
        assert_eq!((request.price_minor, request.stock), (1250, 3));
    }
}
