//! `/api/v1/products`: the public catalog (cached, with `Cache-Control`, a strong `ETag` and
//! 304s) and its administration.

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use outgrow_domain::{Currency, Money, ProductDescription, ProductName, SearchText, Stock};
use outgrow_platform::cache::CachePolicy;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    authn::Principal,
    error::{ApiError, FieldError, Problem},
    extract::{ApiJson, ApiQuery, path_uuid},
    paging::{cut_page, link_next, page_size},
    reply::located,
};
use crate::{
    caches,
    state::AppState,
    store::catalog::{NewProduct, ProductPatch, ProductQuery, ProductRow},
};

/// Catalog routes (under `/api/v1/products`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, update_product, delete_product))
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
    /// ISO 4217 code.
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

/// A page of products.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductResponse>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<Uuid>,
}

/// Catalog filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListProductsQuery {
    /// Products after this id (the `next_after` of the previous page).
    pub after: Option<Uuid>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// Lowest price, in minor units.
    pub min_price: Option<i64>,
    /// Highest price, in minor units.
    pub max_price: Option<i64>,
    /// Words that must all appear in the name or description (full-text search).
    pub q: Option<String>,
}

/// Lists products in creation order, optionally filtered by price and text.
#[utoipa::path(
    get, path = "/api/v1/products", tag = "products",
    params(ListProductsQuery),
    responses(
        (status = 200, description = "A page; `Link: rel=next` points to the next. Public caches may keep it `catalog_max_age`.", body = ProductPage),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_products(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ListProductsQuery>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let limit = page_size(query.limit).map_err(|error| errors.push(error)).ok();
    for (field, value) in [("min_price", query.min_price), ("max_price", query.max_price)] {
        if value.is_some_and(|price| price < 0) {
            errors.push(FieldError::new(field, "must not be negative"));
        }
    }
    if let (Some(min), Some(max)) = (query.min_price, query.max_price)
        && min > max
    {
        errors.push(FieldError::new("max_price", "must not be below min_price"));
    }
    let search = match query.q.as_deref().map(SearchText::parse).transpose() {
        Ok(search) => search.flatten(),
        Err(error) => {
            errors.push(FieldError::new("q", error));
            None
        }
    };
    let text = search.as_ref().map(SearchText::as_str);
    let (Some(limit), true) = (limit, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let filter = ProductQuery {
        after: query.after,
        min_price: query.min_price,
        max_price: query.max_price,
        text: text.map(str::to_owned),
        limit: limit + 1,
    };
    // Pages are cached under the catalog's version: a write bumps it, and every page cached
    // before becomes unreachable at once (and expires by its TTL).
    let version = caches::catalog_version(&state).await?;
    let key = format!(
        "v{version}|{}|{}|{}|{}|{limit}",
        filter.after.map(|id| id.to_string()).unwrap_or_default(),
        filter
            .min_price
            .map(|price| price.to_string())
            .unwrap_or_default(),
        filter
            .max_price
            .map(|price| price.to_string())
            .unwrap_or_default(),
        filter.text.as_deref().unwrap_or_default(),
    );
    let policy = CachePolicy::with_ttl(state.settings.cache_catalog_page_ttl);
    let catalog = state.catalog.clone();
    let mut rows: Vec<ProductRow> = state
        .cache
        .get_or_load(caches::CATALOG_PAGES, &key, policy, || async move {
            catalog.list(&filter).await.map(Some)
        })
        .await?
        .unwrap_or_default();
    let next_after = cut_page(&mut rows, limit, |row| row.id);
    let page = ProductPage {
        items: rows.into_iter().map(ProductResponse::from).collect(),
        next_after,
    };
    let mut response = cacheable(&state, &headers, &page)?;
    if let Some(next) = next_after {
        let mut link = format!("/api/v1/products?after={next}&limit={limit}");
        if let Some(min) = query.min_price {
            link.push_str(&format!("&min_price={min}"));
        }
        if let Some(max) = query.max_price {
            link.push_str(&format!("&max_price={max}"));
        }
        if let Some(text) = text {
            link.push_str(&format!("&q={}", form_encode(text)));
        }
        link_next(&mut response, &link);
    }
    Ok(response)
}

/// One product.
#[utoipa::path(
    get, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product. Public caches may keep it `catalog_max_age`.", body = ProductResponse),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_product(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_uuid(&id, "a product id")?;
    let row = caches::cached_product(&state, id)
        .await?
        .ok_or(ApiError::NotFound("no such product"))?;
    // A view, 200 or 304 alike; counted in memory and written behind.
    state.views.record(id);
    cacheable(&state, &headers, &ProductResponse::from(row))
}

/// Renders `body` as a public, cacheable response with a strong ETag; answers 304 when the
/// client's `If-None-Match` already names it.
fn cacheable<T: Serialize>(state: &AppState, headers: &HeaderMap, body: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(anyhow::Error::from)?;
    let digest = sha2::Sha256::digest(&bytes);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let cache_control = format!("public, max-age={}", state.settings.catalog_max_age.as_secs());
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag);
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            Body::from(bytes),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(anyhow::Error::from)?,
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&cache_control).map_err(anyhow::Error::from)?,
    );
    Ok(response)
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The 403 of the catalog's writes.
const ADMINS_ONLY: &str = "only administrators manage the catalog";

/// A new product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    /// 1–200 characters.
    pub name: String,
    /// Up to 5,000 characters.
    #[serde(default)]
    pub description: String,
    /// Minor units (cents), 0 or more.
    pub price_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Units available, 0 to 1,000,000,000.
    pub stock: i64,
    /// A public upload to show.
    pub image_id: Option<Uuid>,
}

/// Changes to a product; absent fields stay as they are, `image_id: null` removes the image.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProductRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub stock: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub image_id: Option<Option<Uuid>>,
}

/// `Some(None)` for an explicit `null`, so "remove" differs from "leave alone".
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Uuid>>, D::Error> {
    Option::<Uuid>::deserialize(deserializer).map(Some)
}

/// `parsed`'s value, or `None` with its error recorded against `field`: every invalid field
/// of a request is reported at once.
fn collect<T>(
    field: &str,
    parsed: Result<T, outgrow_domain::ValidationError>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    parsed
        .map_err(|error| errors.push(FieldError::new(field, error)))
        .ok()
}

fn check_price(minor: i64, currency: &str, errors: &mut Vec<FieldError>) -> Option<Money> {
    let currency = collect("currency", Currency::parse(currency), errors)?;
    collect("price_minor", Money::new(minor, currency), errors)
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
    responses(
        (status = 201, description = "Created; `Location` names it", body = ProductResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an administrator", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_product(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateProductRequest>,
) -> Result<Response, ApiError> {
    principal.require_admin(ADMINS_ONLY)?;
    let mut errors = Vec::new();
    let name = collect("name", ProductName::parse(&request.name), &mut errors);
    let description = collect(
        "description",
        ProductDescription::parse(&request.description),
        &mut errors,
    );
    let price = check_price(request.price_minor, &request.currency, &mut errors);
    let stock = collect("stock", Stock::new(request.stock), &mut errors);
    let (Some(name), Some(description), Some(price), Some(stock)) = (name, description, price, stock) else {
        return Err(ApiError::Validation(errors));
    };
    check_image(&state, request.image_id).await?;
    let id = state
        .catalog
        .create(&NewProduct {
            name: name.into_inner(),
            description: description.into_inner(),
            price,
            stock: stock.units(),
            image_id: request.image_id,
        })
        .await?;
    caches::catalog_changed(&state, id).await;
    let row = state
        .catalog
        .get_current(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("product {id} vanished after its creation"))?;
    located(
        StatusCode::CREATED,
        &format!("/api/v1/products/{id}"),
        ProductResponse::from(row),
    )
}

/// Changes a product (admins only).
#[utoipa::path(
    patch, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    request_body = UpdateProductRequest,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, body = ProductResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_product(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UpdateProductRequest>,
) -> Result<Json<ProductResponse>, ApiError> {
    principal.require_admin(ADMINS_ONLY)?;
    let id = path_uuid(&id, "a product id")?;
    let mut errors = Vec::new();
    let name = request
        .name
        .as_deref()
        .and_then(|name| collect("name", ProductName::parse(name), &mut errors));
    let description = request
        .description
        .as_deref()
        .and_then(|description| collect("description", ProductDescription::parse(description), &mut errors));
    let stock = request
        .stock
        .and_then(|stock| collect("stock", Stock::new(stock), &mut errors));
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
    if let Some(image) = request.image_id {
        check_image(&state, image).await?;
    }
    let patch = ProductPatch {
        name: name.map(ProductName::into_inner),
        description: description.map(ProductDescription::into_inner),
        price,
        stock: stock.map(Stock::units),
        image_id: request.image_id,
    };
    if !state.catalog.update(id, &patch).await? {
        return Err(ApiError::NotFound("no such product"));
    }
    caches::catalog_changed(&state, id).await;
    let row = state
        .catalog
        .get_current(id)
        .await?
        .ok_or(ApiError::NotFound("no such product"))?;
    Ok(Json(ProductResponse::from(row)))
}

/// Deletes a product (admins only); orders keep what they sold.
#[utoipa::path(
    delete, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
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
