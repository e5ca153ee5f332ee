//! `/api/v1/products`: the public catalog (cached, with `Cache-Control`, a strong `ETag` and
//! 304s: [`reads`]) and its administration (here).

pub mod reads;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use chrono::{DateTime, Utc};
use outgrow_domain::{Currency, Money, ProductDescription, ProductName, Stock};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

pub use reads::{ListProductsQuery, ProductPage};

use super::{
    authn::Principal,
    error::{ApiError, FieldError},
    extract::{Admin, ApiJson, integer, path_uuid},
    reply::located,
    responses::{Forbidden, Invalid, NotAdministrator, NotFound},
};
use crate::{
    caches,
    state::AppState,
    store::catalog::{NewProduct, ProductPatch, ProductRow},
};

/// Catalog routes (under `/api/v1/products`).
pub fn router() -> OpenApiRouter<AppState> {
    feature_router![reads::list_products, create_product; reads::get_product, update_product, delete_product]
}

/// A product's image: the original and its WebP variants for `srcset`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductImage {
    /// The upload's id.
    pub id: Uuid,
    /// The original.
    pub url: String,
    /// `url 400w, url 800w, …` (empty while the variants are being made).
    pub srcset: String,
}

/// A product.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductResponse {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// Price in minor units (cents) of `currency`.
    pub price_minor: i64,
    /// ISO 4217 code, upper case.
    #[schema(example = "EUR")]
    pub currency: String,
    /// Units available.
    pub stock: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ProductImage>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ProductRow> for ProductResponse {
    fn from(row: ProductRow) -> Self {
        let image = row.image_id.map(|id| {
            let base = format!("/api/v1/uploads/{id}");
            let srcset = row
                .image_variants
                .as_ref()
                .map(|variants| {
                    variants
                        .0
                        .iter()
                        .map(|variant| format!("{base}/variants/{} {}w", variant.width, variant.width))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            ProductImage {
                id,
                url: format!("{base}/content"),
                srcset,
            }
        });
        Self {
            id: row.id,
            name: row.name,
            description: row.description,
            price_minor: row.price_minor,
            currency: row.currency,
            stock: row.stock,
            image,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The 403 of the catalog's writes.
const ADMINS_ONLY: &str = "only administrators manage the catalog";

/// A new product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    /// 1–200 characters, not all blank, no control characters (trimmed).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// Up to 5,000 characters.
    #[serde(default)]
    pub description: String,
    /// Minor units (cents), 0 to 100,000,000,000.
    #[serde(deserialize_with = "integer::exact")]
    #[schema(minimum = 0, maximum = 100_000_000_000_i64)]
    pub price_minor: i64,
    /// ISO 4217 code: three letters (stored in upper case).
    #[schema(min_length = 3, max_length = 3, pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    /// Units available, 0 to 1,000,000,000.
    #[serde(deserialize_with = "integer::exact")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: i64,
    /// A public upload to show.
    pub image_id: Option<Uuid>,
}

/// Changes to a product; absent fields stay as they are, `image_id: null` removes the image.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProductRequest {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(minimum = 0, maximum = 100_000_000_000_i64)]
    pub price_minor: Option<i64>,
    /// Changes together with `price_minor`.
    #[schema(min_length = 3, max_length = 3, pattern = "^[A-Za-z]{3}$")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub image_id: Option<Option<Uuid>>,
}

/// `Some(None)` for an explicit `null`, so "remove" differs from "leave alone".
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Uuid>>, D::Error> {
    Option::<Uuid>::deserialize(deserializer).map(Some)
}

fn check_price(minor: i64, currency: &str, errors: &mut Vec<FieldError>) -> Option<Money> {
    let currency = FieldError::collect("currency", Currency::parse(currency), errors)?;
    FieldError::collect("price_minor", Money::new(minor, currency), errors)
}

/// An image must be a public upload that exists: the catalog is public.
async fn check_image(state: &AppState, image: Option<Uuid>) -> Result<(), ApiError> {
    if let Some(id) = image {
        match state.media.upload(outgrow_domain::UploadId(id)).await? {
            Some(upload) if upload.public => {}
            _ => return Err(ApiError::invalid("image_id", "must be the id of a public upload")),
        }
    }
    Ok(())
}

/// Creates a product (admins only).
#[utoipa::path(
    post, path = "/api/v1/products", tag = "products",
    request_body = CreateProductRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 201, description = "Created; `Location` names it", body = ProductResponse), NotAdministrator, Invalid)
)]
pub async fn create_product(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(request): ApiJson<CreateProductRequest>,
) -> Result<Response, ApiError> {
    let row = insert_product(&state, &request).await?;
    located(
        StatusCode::CREATED,
        &format!("/api/v1/products/{}", row.id),
        ProductResponse::from(row),
    )
}

/// A new product's fields, checked: every invalid field is reported at once (`name`,
/// `description`, `currency`, `price_minor`, `stock`). The image is checked by
/// [`insert_product`], which needs the store.
pub fn check_new_product(request: &CreateProductRequest) -> Result<NewProduct, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = FieldError::collect("name", ProductName::parse(&request.name), &mut errors);
    let description = FieldError::collect(
        "description",
        ProductDescription::parse(&request.description),
        &mut errors,
    );
    let price = check_price(request.price_minor, &request.currency, &mut errors);
    let stock = FieldError::collect("stock", Stock::new(request.stock), &mut errors);
    let (Some(name), Some(description), Some(price), Some(stock)) = (name, description, price, stock) else {
        return Err(errors);
    };
    Ok(NewProduct {
        name: name.into_inner(),
        description: description.into_inner(),
        price,
        stock: stock.units(),
        image_id: request.image_id,
    })
}

/// Creates a product from `request` (the caller has checked that an admin asks): validation,
/// the image check, the insert (which bumps the catalog's version), the caches forgotten.
/// The API's `POST /api/v1/products` and the admin pages' product form share it.
pub async fn insert_product(
    state: &AppState,
    request: &CreateProductRequest,
) -> Result<ProductRow, ApiError> {
    let product = check_new_product(request).map_err(ApiError::Validation)?;
    check_image(state, request.image_id).await?;
    let id = state.catalog.create(&product).await?;
    caches::catalog_changed(state, id).await;
    let row = state
        .catalog
        .get_current(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("product {id} vanished after its creation"))?;
    Ok(row)
}

/// Changes a product (admins only).
#[utoipa::path(
    patch, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    request_body = UpdateProductRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = ProductResponse), Invalid, Forbidden, NotFound)
)]
pub async fn update_product(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateProductRequest>,
) -> Result<Json<ProductResponse>, ApiError> {
    let id = path_uuid(&id, "a product id")?;
    let row = change_product(&state, id, &request).await?;
    Ok(Json(ProductResponse::from(row)))
}

/// A product change's fields, checked (every invalid field reported at once; price and
/// currency change together; an empty change is a 400). The image is checked by
/// [`change_product`], which needs the store.
pub fn check_product_patch(request: &UpdateProductRequest) -> Result<ProductPatch, ApiError> {
    let mut errors = Vec::new();
    let name = request
        .name
        .as_deref()
        .and_then(|name| FieldError::collect("name", ProductName::parse(name), &mut errors));
    let description = request.description.as_deref().and_then(|description| {
        FieldError::collect("description", ProductDescription::parse(description), &mut errors)
    });
    let stock = request
        .stock
        .and_then(|stock| FieldError::collect("stock", Stock::new(stock), &mut errors));
    let price = match (request.price_minor, request.currency.as_deref()) {
        (Some(minor), Some(currency)) => check_price(minor, currency, &mut errors),
        (None, None) => None,
        _ => {
            errors.push(FieldError::new(
                "price_minor",
                "price_minor and currency change together",
            ));
            None
        }
    };
    let nothing = name.is_none()
        && description.is_none()
        && price.is_none()
        && request.stock.is_none()
        && request.image_id.is_none();
    if nothing && errors.is_empty() {
        return Err(ApiError::BadRequest("nothing to change".into()));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(ProductPatch {
        name: name.map(ProductName::into_inner),
        description: description.map(ProductDescription::into_inner),
        price,
        stock: stock.map(Stock::units),
        image_id: request.image_id,
    })
}

/// Applies `request` to product `id` (the caller has checked that an admin asks): validation,
/// the image check, the update (which bumps the catalog's version), the caches forgotten.
/// The API's `PATCH /api/v1/products/{id}` and the admin pages' product form share it.
pub async fn change_product(
    state: &AppState,
    id: Uuid,
    request: &UpdateProductRequest,
) -> Result<ProductRow, ApiError> {
    let patch = check_product_patch(request)?;
    if let Some(image) = request.image_id {
        check_image(state, image).await?;
    }
    if !state.catalog.update(id, &patch).await? {
        return Err(ApiError::NotFound("no such product"));
    }
    caches::catalog_changed(state, id).await;
    state
        .catalog
        .get_current(id)
        .await?
        .ok_or(ApiError::NotFound("no such product"))
}

/// Deletes a product (admins only); orders keep what they sold.
#[utoipa::path(
    delete, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204, description = "Deleted"), Forbidden, NotFound)
)]
pub async fn delete_product(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require_admin(ADMINS_ONLY)?;
    let id = path_uuid(&id, "a product id")?;
    if !state.catalog.delete(id).await? {
        return Err(ApiError::NotFound("no such product"));
    }
    caches::catalog_changed(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}
