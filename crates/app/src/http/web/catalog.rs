//! The storefront's public pages: the catalog (search, price filter, keyset paging) and a
//! product. Both are the same for every visitor, read through the API's caches, and carry
//! images as `<picture>` over the WebP variants with explicit dimensions (no layout shift).

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use outgrow_domain::SearchText;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    error::PageError,
    page::{Audience, Layout, money, parse_price, render},
};
use crate::{
    caches,
    http::products::reads::load_page,
    state::AppState,
    store::catalog::{ProductQuery, ProductRow},
};

/// Products per catalog page.
const PAGE_SIZE: u32 = 12;
/// Cards in the first screenful: their images load at once; the rest lazily.
const EAGER_IMAGES: usize = 2;

/// An image ready to show: the WebP variants for `srcset`, the largest for `src`.
#[derive(Debug, Clone)]
pub struct ImageView {
    /// The largest variant (browsers without `srcset` take it).
    pub src: String,
    /// `url 400w, url 800w, …`.
    pub srcset: String,
    /// The largest variant's pixels: the aspect ratio the browser reserves.
    pub width: u32,
    pub height: u32,
}

impl ImageView {
    /// The variants of `row`'s image, or `None` (no image, or its variants are being made).
    pub fn of(row: &ProductRow) -> Option<Self> {
        let id = row.image_id?;
        let variants = &row.image_variants.as_ref()?.0;
        let largest = variants.iter().max_by_key(|variant| variant.width)?;
        let url = |width: u32| format!("/api/v1/uploads/{id}/variants/{width}");
        Some(Self {
            src: url(largest.width),
            srcset: variants
                .iter()
                .map(|variant| format!("{} {}w", url(variant.width), variant.width))
                .collect::<Vec<_>>()
                .join(", "),
            width: largest.width,
            height: largest.height,
        })
    }
}

/// A product as the pages show it.
#[derive(Debug, Clone)]
pub struct ProductView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// `12.50 EUR`.
    pub price: String,
    pub stock: i64,
    pub image: Option<ImageView>,
}

impl From<ProductRow> for ProductView {
    fn from(row: ProductRow) -> Self {
        Self {
            image: ImageView::of(&row),
            price: money(row.price_minor, &row.currency),
            id: row.id,
            name: row.name,
            description: row.description,
            stock: row.stock,
        }
    }
}

/// The catalog's query string, as the search form sends it (prices as typed: `12.50`).
#[derive(Debug, Default, Deserialize)]
pub struct CatalogQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub min: String,
    #[serde(default)]
    pub max: String,
    pub after: Option<Uuid>,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    layout: Layout,
    query: CatalogQuery,
    products: Vec<ProductView>,
    /// The next page's URL, if there is one.
    next: Option<String>,
    /// Messages for the search fields (`q`, `min`, `max`).
    errors: Vec<(&'static str, String)>,
    eager: usize,
}

impl CatalogPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
    }
}

/// `GET /`: the catalog, filtered by `q`, `min` and `max`, a page at a time.
pub async fn show_catalog(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let Query(query) = Query::<CatalogQuery>::try_from_uri(&uri)
        .map_err(|_| PageError::BadRequest("This catalog link is malformed.".to_owned()))?;
    let mut errors = Vec::new();
    let mut price = |field: &'static str, text: &str| {
        if text.trim().is_empty() {
            return None;
        }
        let parsed = parse_price(text);
        if parsed.is_none() {
            errors.push((field, "Enter a price like 12 or 12.50.".to_owned()));
        }
        parsed
    };
    let min_price = price("min", &query.min);
    let max_price = price("max", &query.max);
    if let (Some(min), Some(max)) = (min_price, max_price)
        && min > max
    {
        errors.push((
            "max",
            "The highest price must not be below the lowest.".to_owned(),
        ));
    }
    let text = match SearchText::parse(&query.q) {
        Ok(text) => text,
        Err(error) => {
            errors.push(("q", error.to_string()));
            None
        }
    };
    let (products, next) = if errors.is_empty() {
        let filter = ProductQuery {
            after: query.after,
            min_price,
            max_price,
            text: text.as_ref().map(|text| text.as_str().to_owned()),
            limit: PAGE_SIZE + 1,
        };
        let (rows, next_after) = load_page(&state, filter).await?;
        let next = next_after.map(|after| next_url(&query, after));
        (rows.into_iter().map(ProductView::from).collect(), next)
    } else {
        (Vec::new(), None)
    };
    let title = if query.q.trim().is_empty() {
        "Catalog".to_owned()
    } else {
        format!("Search: {}", query.q.trim())
    };
    let page = CatalogPage {
        layout: Layout::public(title, "catalog"),
        query,
        products,
        next,
        errors,
        eager: EAGER_IMAGES,
    };
    let mut response = render(&page, Audience::Public, &headers)?;
    if !page.errors.is_empty() {
        *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

/// The URL of the page after `after`, with the same filters.
fn next_url(query: &CatalogQuery, after: Uuid) -> String {
    let mut url = format!("/?after={after}");
    for (name, value) in [("q", &query.q), ("min", &query.min), ("max", &query.max)] {
        if !value.trim().is_empty() {
            url.push_str(&format!("&{name}={}", super::visitor::form_encode(value.trim())));
        }
    }
    url
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPage {
    layout: Layout,
    product: ProductView,
}

/// `GET /products/{id}`: one product, with its image and the add-to-cart form.
pub async fn show_product(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let missing = PageError::NotFound("There is no such product.");
    let id = Uuid::try_parse(&id).map_err(|_| PageError::NotFound("There is no such product."))?;
    let row = caches::cached_product(&state, id)
        .await
        .map_err(crate::http::error::ApiError::from)?
        .ok_or(missing)?;
    state.views.record(id);
    let product = ProductView::from(row);
    let page = ProductPage {
        layout: Layout::public(product.name.clone(), "product"),
        product,
    };
    render(&page, Audience::Public, &headers)
}
