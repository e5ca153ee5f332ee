//! The browser UI: server-rendered pages (askama templates in `crates/app/templates/`) over the
//! same state, stores and caches as the JSON API, and the static assets (`web/`, embedded by
//! `outgrow-assets`).
//!
//! Pages work without JavaScript (every action is a form); the ES module of each page, loaded
//! on demand by `js/app.js`, only enhances them. Public pages (catalog, product, cart) are the
//! same for everyone, so they can be revalidated by any cache; pages of an account carry a
//! CSRF token bound to the session ([`csrf`]). Every form POST also passes the guard's
//! cross-site check of the session cookie (`Sec-Fetch-Site`/`Origin`).
//!
//! Routes are declared once, in [`pages!`]: the router and the list the route inventory checks
//! (`http::undocumented_routes`) come from the same table.

pub mod account;
pub mod admin;
pub mod assets;
pub mod cart;
pub mod catalog;
pub mod csrf;
pub mod dashboard;
pub mod error;
pub mod layout;
pub mod page;
pub mod visitor;

use axum::Router;

use crate::{http::UndocumentedRoute, state::AppState};

/// Why pages are outside the OpenAPI document.
const PAGE: &str = "a browser page (server-rendered HTML), not part of the JSON API";

/// The upper-case name of a routing method (`get` → `"GET"`).
macro_rules! verb {
    (get) => {
        "GET"
    };
    (post) => {
        "POST"
    };
}

/// The browser routes: `path => method(handler), …;` each. Expands to [`routes`] (the list) and
/// [`router`] (the router), so neither can name a route the other lacks.
macro_rules! pages {
    ($($path:literal => $($method:ident($handler:path)),+ ;)+) => {
        /// Every browser route, with its method.
        pub fn routes() -> &'static [UndocumentedRoute] {
            &[$($(UndocumentedRoute { method: verb!($method), path: $path, reason: PAGE },)+)+]
        }

        /// The browser routes' router (the middleware stack is applied by `http::router`).
        pub fn router() -> Router<AppState> {
            Router::new()
                $(.route($path, axum::routing::MethodRouter::new()$(.$method($handler))+))+
        }
    };
}

pages! {
    "/" => get(catalog::show_catalog);
    "/products/{id}" => get(catalog::show_product);
    "/assets/{*path}" => get(assets::serve_asset);
    // cart
    "/cart" => get(cart::show_cart), post(cart::update_cart);
    "/checkout" => post(cart::check_out);
    // dashboard
    "/admin/dashboard" => get(dashboard::show_dashboard);
    "/admin/dashboard/stream" => get(dashboard::stream_dashboard);
    "/admin/dashboard/snapshot" => get(dashboard::show_snapshot);
    // admin
    "/admin/products" => get(admin::products::show_products), post(admin::product_form::create_product);
    "/admin/products/new" => get(admin::products::new_product);
    "/admin/products/{id}" => get(admin::products::show_product), post(admin::product_form::update_product);
    "/admin/users" => get(admin::users::show_users);
    "/admin/jobs" => get(admin::jobs::show_jobs);
    "/admin/jobs/{id}/retry" => post(admin::jobs::retry_job);
    "/admin/jobs/{id}/cancel" => post(admin::jobs::cancel_job);
    "/admin/analytics" => get(admin::analytics::show_analytics);
    // account
    "/register" => get(account::auth::show_register_form), post(account::auth::create_account);
    "/login" => get(account::auth::show_login_form), post(account::auth::sign_in);
    "/logout" => post(account::auth::sign_out);
    "/account" => get(account::profile::show_profile), post(account::profile::save_profile);
    "/account/orders" => get(account::orders::show_orders);
    "/account/orders/{id}/cancel" => post(account::orders::cancel_order);
    "/account/exports" => get(account::exports::show_exports), post(account::exports::create_export);
    "/account/uploads" => get(account::uploads::show_uploads), post(account::uploads::create_upload);
}

/// The answer to a path no route matches: an HTML page for a browser navigating to it, the
/// API's problem+json for everyone else.
pub async fn not_found(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    if page::wants_html(&headers) {
        error::PageError::NotFound("There is no page here.").into_response()
    } else {
        axum::http::StatusCode::NOT_FOUND.into_response()
    }
}

/// The form routes that post images (multipart): the guard gives them the upload body limit.
pub const UPLOAD_FORMS: &[&str] = &["/account/uploads", "/admin/products", "/admin/products/{id}"];
