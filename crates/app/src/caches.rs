//! The shared cache's names, and the reads and invalidations of the catalog that more than one
//! layer performs: handlers read and change products, and jobs (image variants, order
//! reconciliation) change what a cached product shows. Nothing here knows about HTTP.

use outgrow_platform::cache::{CachePolicy, LoadError};
use uuid::Uuid;

use crate::{db::markers::Subject, repo::StoreError, state::App, store::catalog::ProductRow};

/// Users by id, as the API shows them (the JSON of `http::users::UserResponse`).
pub const USERS: &str = "users";
/// Products by id.
pub const PRODUCTS: &str = "products";
/// The catalog's version (one key, [`CATALOG_VERSION_KEY`]): a catalog write bumps it.
pub const CATALOG: &str = "catalog";
/// The key of the catalog's version in [`CATALOG`].
pub const CATALOG_VERSION_KEY: &str = "version";
/// Listing pages, keyed by the catalog version they were read at and their filters.
pub const CATALOG_PAGES: &str = "catalog_pages";

/// What a cache-aside read of the catalog fails with.
pub type CatalogLoadError = LoadError<StoreError>;

/// The product `id`, cache-aside (absent products are cached briefly too).
pub async fn cached_product(app: &App, id: Uuid) -> Result<Option<ProductRow>, CatalogLoadError> {
    let policy = CachePolicy::with_ttl(app.settings.cache_product_ttl);
    let catalog = app.catalog.clone();
    app.cache
        .get_or_load(PRODUCTS, &id.to_string(), policy, || async move {
            catalog.get(id).await
        })
        .await
}

/// The catalog's version, cache-aside: pages are cached under it, so a write that bumps it
/// makes every page cached before unreachable at once.
pub async fn catalog_version(app: &App) -> Result<i64, CatalogLoadError> {
    let policy = CachePolicy::with_ttl(app.settings.cache_product_ttl);
    let catalog = app.catalog.clone();
    Ok(app
        .cache
        .get_or_load(CATALOG, CATALOG_VERSION_KEY, policy, || async move {
            catalog.version().await.map(Some)
        })
        .await?
        .unwrap_or_default())
}

/// Forgets the cached copies of `products` (after their stock or content changed).
pub async fn forget_products(app: &App, products: Vec<Uuid>) {
    for id in products {
        // Marked first: a reload right after the invalidation must not come from a replica
        // that has not replayed the change yet.
        app.db.wrote(Subject::Product(id)).await;
        app.cache.invalidate(PRODUCTS, &id.to_string()).await;
    }
}

/// After a catalog write: the product's copy and every cached page go, everywhere.
pub async fn catalog_changed(app: &App, id: Uuid) {
    app.db.wrote(Subject::Catalog).await;
    app.cache.invalidate(CATALOG, CATALOG_VERSION_KEY).await;
    forget_products(app, vec![id]).await;
}
