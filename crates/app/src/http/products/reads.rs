//! The catalog's public reads: a page of products and one product, both cached, answered with
//! `Cache-Control`, a strong `ETag` and 304s.

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use outgrow_domain::SearchText;
use outgrow_platform::cache::CachePolicy;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::ProductResponse;
use crate::{
    caches,
    http::{
        error::{ApiError, FieldError},
        extract::{ApiQuery, path_uuid},
        paging::{cut_page, link_next, page_size},
        reply::etag_matches,
        responses::{CatalogUnchanged, Invalid, NotFound},
    },
    state::AppState,
    store::catalog::{ProductQuery, ProductRow},
};

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
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Lowest price, in minor units.
    #[param(minimum = 0)]
    pub min_price: Option<i64>,
    /// Highest price, in minor units.
    #[param(minimum = 0)]
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
        CatalogUnchanged, Invalid,
    )
)]
pub async fn list_products(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ListProductsQuery>,
) -> Result<Response, ApiError> {
    let (limit, search) = check_list_query(&query)?;
    let text = search.as_ref().map(SearchText::as_str);
    let filter = ProductQuery {
        after: query.after,
        min_price: query.min_price,
        max_price: query.max_price,
        text: text.map(str::to_owned),
        limit: limit + 1,
    };
    let (rows, next_after) = load_page(&state, filter).await?;
    let page = ProductPage {
        items: rows.into_iter().map(ProductResponse::from).collect(),
        next_after,
    };
    let mut response = cacheable(&state, &headers, &page)?;
    if let Some(next) = next_after {
        link_next(&mut response, &next_page_link(&query, limit, text, next));
    }
    Ok(response)
}

/// The filters of a catalog page, checked (every invalid one reported at once): the page size
/// and the search, if any.
pub(crate) fn check_list_query(query: &ListProductsQuery) -> Result<(u32, Option<SearchText>), ApiError> {
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
    let (Some(limit), true) = (limit, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    Ok((limit, search))
}

/// The `Link: rel=next` target of a catalog page: the same filters, after the page's last
/// product `next`.
pub(crate) fn next_page_link(
    query: &ListProductsQuery,
    limit: u32,
    text: Option<&str>,
    next: Uuid,
) -> String {
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
    link
}

/// A page of the catalog through the cache: up to `filter.limit - 1` rows (the query asks for
/// one more, to learn whether a next page exists) and the `after` of the next page. The API and
/// the catalog page share it, and so share the cached pages.
pub async fn load_page(
    state: &AppState,
    filter: ProductQuery,
) -> Result<(Vec<ProductRow>, Option<Uuid>), ApiError> {
    let limit = filter.limit.saturating_sub(1);
    // Pages are cached under the catalog's version: a write bumps it, and every page cached
    // before becomes unreachable at once (and expires by its TTL).
    let version = caches::catalog_version(state).await?;
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
    Ok((rows, next_after))
}

/// One product.
#[utoipa::path(
    get, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product. Public caches may keep it `catalog_max_age`.", body = ProductResponse),
        CatalogUnchanged, NotFound,
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
    let mut response = if etag_matches(headers, &etag) {
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
