//! The catalog's administration pages that read: the product list (keyset paging, each
//! product's image status) and the product form, empty or filled from a product, with the
//! variants of its image. The form's posts are in [`super::product_form`].

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use outgrow_domain::{UploadId, UploadStatus};
use serde::Deserialize;
use uuid::Uuid;

use super::{PAGE_SIZE, layout, size};
use crate::{
    db::media::Variant,
    http::web::{
        error::PageError,
        page::{Audience, Layout, money, render},
        visitor::Admin,
    },
    http::{error::ApiError, paging::cut_page},
    state::AppState,
    store::catalog::{ProductQuery, ProductRow},
};

/// The page module of the product form (`web/js/admin-product.js`).
const FORM_MODULE: &str = "admin-product";

/// An image drawn from its smallest WebP variant, with that variant's dimensions.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub src: String,
    pub width: u32,
    pub height: u32,
}

/// A row of the product list.
#[derive(Debug, Clone)]
pub struct ProductLine {
    pub id: Uuid,
    pub name: String,
    /// `12.50 EUR`.
    pub price: String,
    pub stock: i64,
    /// Present once the image's variants are made.
    pub thumbnail: Option<Thumbnail>,
    /// "No image", "Ready", "Processing" or "Failed".
    pub image_status: &'static str,
}

/// The words for an upload's state.
fn status_word(status: UploadStatus) -> &'static str {
    match status {
        UploadStatus::Processing => "Processing",
        UploadStatus::Ready => "Ready",
        UploadStatus::Failed => "Failed",
    }
}

impl ProductLine {
    /// `row` as a line; the upload is read only when the row cannot tell (an image without
    /// variants is being made, or has failed).
    async fn of(state: &AppState, row: ProductRow) -> Result<Self, PageError> {
        let variants = row.image_variants.as_ref().map(|variants| &variants.0);
        let thumbnail = row.image_id.zip(variants).and_then(|(id, variants)| {
            let smallest = variants.iter().min_by_key(|variant| variant.width)?;
            Some(Thumbnail {
                src: variant_url(id, smallest),
                width: smallest.width,
                height: smallest.height,
            })
        });
        let image_status = match (row.image_id, &thumbnail) {
            (None, _) => "No image",
            (Some(_), Some(_)) => "Ready",
            (Some(id), None) => state
                .media
                .upload(UploadId(id))
                .await
                .map_err(ApiError::from)?
                .map_or("Missing", |upload| status_word(upload.status)),
        };
        Ok(Self {
            price: money(row.price_minor, &row.currency),
            id: row.id,
            name: row.name,
            stock: row.stock,
            thumbnail,
            image_status,
        })
    }
}

/// Where a variant is served.
fn variant_url(upload: Uuid, variant: &Variant) -> String {
    format!("/api/v1/uploads/{upload}/variants/{}", variant.width)
}

/// The list's query string.
#[derive(Debug, Deserialize)]
pub struct ProductsQuery {
    /// The last product of the previous page.
    pub after: Option<Uuid>,
}

#[derive(Template)]
#[template(path = "admin/products.html")]
struct ProductsPage {
    layout: Layout,
    products: Vec<ProductLine>,
    next: Option<String>,
}

/// `GET /admin/products`: every product in creation order, a page at a time, read from the
/// catalog itself (not the public pages' cache: an admin sees their last save).
pub async fn show_products(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let Query(query) = Query::<ProductsQuery>::try_from_uri(&uri)
        .map_err(|_| PageError::BadRequest("This product list link is malformed.".to_owned()))?;
    let mut rows = state
        .catalog
        .list(&ProductQuery {
            after: query.after,
            limit: PAGE_SIZE + 1,
            ..ProductQuery::default()
        })
        .await
        .map_err(ApiError::from)?;
    let next =
        cut_page(&mut rows, PAGE_SIZE, |row| row.id).map(|after| format!("/admin/products?after={after}"));
    let mut products = Vec::with_capacity(rows.len());
    for row in rows {
        products.push(ProductLine::of(&state, row).await?);
    }
    let page = ProductsPage {
        layout: layout(&state, &principal, "Products", ""),
        products,
        next,
    };
    render(&page, Audience::Private, &headers)
}

/// The product form's fields as typed (prices as `12.50`), so a refused form comes back as it
/// was sent.
#[derive(Debug, Clone)]
pub struct ProductFields {
    pub name: String,
    pub description: String,
    pub price: String,
    pub currency: String,
    pub stock: String,
}

impl Default for ProductFields {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            price: String::new(),
            currency: "EUR".to_owned(),
            stock: "0".to_owned(),
        }
    }
}

impl From<&ProductRow> for ProductFields {
    fn from(row: &ProductRow) -> Self {
        let minor = row.price_minor.unsigned_abs();
        Self {
            name: row.name.clone(),
            description: row.description.clone(),
            price: format!("{}.{:02}", minor / 100, minor % 100),
            currency: row.currency.clone(),
            stock: row.stock.to_string(),
        }
    }
}

/// One WebP variant as the edit page shows it.
#[derive(Debug, Clone)]
pub struct Figure {
    pub src: String,
    pub width: u32,
    pub height: u32,
    /// `400 × 300 px · 12.3 KB`.
    pub caption: String,
}

impl Figure {
    fn of(upload: Uuid, variant: &Variant) -> Self {
        Self {
            src: variant_url(upload, variant),
            width: variant.width,
            height: variant.height,
            caption: format!(
                "{} × {} px · {}",
                variant.width,
                variant.height,
                size(variant.bytes)
            ),
        }
    }
}

/// The variants section of the edit page.
#[derive(Debug, Clone, Default)]
pub struct VariantsView {
    /// The image's upload (absent: the product has no image).
    pub upload_id: Option<Uuid>,
    /// `processing`, `ready` or `failed` (what the page's script polls for).
    pub status: &'static str,
    /// The WebP variants, narrowest first.
    pub figures: Vec<Figure>,
    /// Why they could not be made.
    pub error: Option<String>,
}

impl VariantsView {
    /// The variants of `row`'s image as they are now.
    async fn of(state: &AppState, row: &ProductRow) -> Result<Self, PageError> {
        let Some(id) = row.image_id else {
            return Ok(Self::default());
        };
        let upload = state.media.upload(UploadId(id)).await.map_err(ApiError::from)?;
        let Some(upload) = upload else {
            return Ok(Self {
                upload_id: Some(id),
                status: "failed",
                error: Some("the image is missing".to_owned()),
                ..Self::default()
            });
        };
        let mut variants = upload.variants.0.clone();
        variants.sort_by_key(|variant| variant.width);
        Ok(Self {
            upload_id: Some(id),
            status: upload.status.as_str(),
            figures: variants.iter().map(|variant| Figure::of(id, variant)).collect(),
            error: upload.error,
        })
    }
}

/// The product form, new (`product: None`) or of a product.
#[derive(Template)]
#[template(path = "admin/product_form.html")]
pub struct ProductFormPage {
    pub layout: Layout,
    /// The product being edited.
    pub product: Option<Uuid>,
    pub fields: ProductFields,
    /// Messages per field (`name`, `description`, `price`, `currency`, `stock`, `image`).
    pub errors: Vec<(&'static str, String)>,
    /// The edit page's variants section.
    pub variants: Option<VariantsView>,
}

impl ProductFormPage {
    /// The form of `product` (or a new one) seen by `principal`, showing `fields` and `errors`.
    pub async fn build(
        state: &AppState,
        principal: &crate::http::authn::Principal,
        product: Option<&ProductRow>,
        fields: ProductFields,
        errors: Vec<(&'static str, String)>,
    ) -> Result<Self, PageError> {
        let (title, variants) = match product {
            Some(row) => (
                format!("Edit {}", row.name),
                Some(VariantsView::of(state, row).await?),
            ),
            None => ("New product".to_owned(), None),
        };
        Ok(Self {
            layout: layout(state, principal, &title, FORM_MODULE),
            product: product.map(|row| row.id),
            fields,
            errors,
            variants,
        })
    }

    /// Where the form posts.
    fn action(&self) -> String {
        self.product.map_or_else(
            || "/admin/products".to_owned(),
            |id| format!("/admin/products/{id}"),
        )
    }

    /// The message for `field`, if it was refused.
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
    }
}

/// `GET /admin/products/new`: the empty product form.
pub async fn new_product(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let page = ProductFormPage::build(&state, &principal, None, ProductFields::default(), Vec::new()).await?;
    render(&page, Audience::Private, &headers)
}

/// The edit page's query string: `saved` after a successful save.
#[derive(Debug, Deserialize)]
pub struct EditQuery {
    pub saved: Option<String>,
}

/// `GET /admin/products/{id}`: the form filled from the product, and its image's variants.
pub async fn show_product(
    State(state): State<AppState>,
    Admin(principal): Admin,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    let row = existing_product(&state, &id).await?;
    let saved = Query::<EditQuery>::try_from_uri(&uri).is_ok_and(|Query(query)| query.saved.is_some());
    let mut page = ProductFormPage::build(
        &state,
        &principal,
        Some(&row),
        ProductFields::from(&row),
        Vec::new(),
    )
    .await?;
    if saved {
        page.layout.notice = Some("Product saved".to_owned());
    }
    render(&page, Audience::Private, &headers)
}

/// The product `id` names, read from the primary (fresh after a save), or a 404 page.
pub async fn existing_product(state: &AppState, id: &str) -> Result<ProductRow, PageError> {
    let missing = PageError::NotFound("There is no such product.");
    let Ok(id) = Uuid::try_parse(id) else {
        return Err(missing);
    };
    state
        .catalog
        .get_current(id)
        .await
        .map_err(ApiError::from)?
        .ok_or(missing)
}
