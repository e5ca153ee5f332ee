//! The HTTP API: routes per feature, the OpenAPI document generated from them, and the
//! middleware stack every request passes through.
//!
//! Layers, outermost first: observe (request id, span, latency histogram, slow-request log) →
//! security headers → HTTPS redirect → compression → CORS → problem+json for every error →
//! catch-panic → timeout (408) → authentication → per-group rate limit and body limit (413) →
//! handler.

pub mod admin;
pub mod analytics;
pub mod auth;
pub mod authn;
pub mod error;
pub mod events;
pub mod exports;
pub mod extract;
pub mod middleware;
pub mod ops;
pub mod orders;
pub mod products;
pub mod uploads;
pub mod users;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{from_fn, from_fn_with_state},
};
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Outgrow API",
        description = "The JSON API of Outgrow, a small online store built to scale. Errors are RFC 9457 problem documents (`application/problem+json`).",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(error::Problem, error::FieldError)),
    tags(
        (name = "auth", description = "Accounts, sign-in and sessions"),
        (name = "users", description = "Own account and users by id"),
        (name = "uploads", description = "Images: upload, WebP variants, downloads"),
        (name = "exports", description = "Data exports with signed download links"),
        (name = "products", description = "The catalog: public, cached, with ETags; managed by admins"),
        (name = "orders", description = "Placing (idempotently), reading and cancelling orders"),
        (name = "events", description = "Analytics events, in batches"),
        (name = "admin", description = "Operating the job queue and reading analytics (admins only)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("outgrow_session"))),
        );
    }
}

/// The OpenAPI document, as served at `/api/openapi.json`.
pub fn openapi(state: &AppState) -> utoipa::openapi::OpenApi {
    api(state).split_for_parts().1
}

/// The routes with their OpenAPI descriptions; rate limits and body limits are applied per
/// group (uploads take far larger bodies than anything else).
fn api(state: &AppState) -> OpenApiRouter<AppState> {
    let body_limit = state.settings.body_limit_bytes;
    let limited = |router: OpenApiRouter<AppState>| {
        router
            .layer(RequestBodyLimitLayer::new(body_limit))
            .layer(DefaultBodyLimit::max(body_limit))
    };
    let default_policy = || from_fn_with_state(state.clone(), middleware::rate_limit_default);
    let auth = limited(auth::router()).layer(from_fn_with_state(state.clone(), middleware::rate_limit_auth));
    let users = limited(users::router()).layer(default_policy());
    let admin = limited(admin::router().merge(analytics::router())).layer(default_policy());
    let products = limited(products::router()).layer(default_policy());
    let orders = limited(orders::router()).layer(default_policy());
    let events = limited(events::router()).layer(default_policy());
    // Multipart overhead (boundaries, part headers) on top of the file itself; the handler
    // enforces the exact file limit with a 413 of its own.
    let upload_body = state.settings.upload_limit_bytes + 64 * 1024;
    let uploads = uploads::router()
        .layer(RequestBodyLimitLayer::new(upload_body))
        .layer(DefaultBodyLimit::max(upload_body))
        .layer(default_policy());
    let exports = limited(exports::create_router())
        .layer(from_fn_with_state(state.clone(), middleware::rate_limit_export))
        .merge(limited(exports::router()).layer(default_policy()))
        .merge(limited(exports::download_router()).layer(default_policy()));
    let v1 = OpenApiRouter::new()
        .nest("/auth", auth)
        .nest("/admin", admin)
        .nest("/uploads", uploads)
        .nest("/exports", exports)
        .nest("/products", products)
        .nest("/orders", orders)
        .nest("/events", events)
        .merge(users)
        // Answers about accounts and tokens must never be stored by a shared cache.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .merge(limited(ops::router()))
}

/// The whole application: API, docs and the middleware stack.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api(&state).split_for_parts();
    // Swagger UI is vendored into the binary: the docs work without network access.
    let docs = Router::from(SwaggerUi::new("/api/docs").url("/api/openapi.json", openapi)).layer(
        SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'",
            ),
        ),
    );
    with_middleware(api.merge(docs), state)
}

/// Wraps `routes` in the full middleware stack (see the module docs for the order).
fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    let settings = &state.settings;
    routes
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(from_fn_with_state(state.clone(), authn::authenticate))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(CatchPanicLayer::new())
        .layer(from_fn(middleware::problem_details))
        .layer(cors(&settings.cors_origins))
        .layer(CompressionLayer::new())
        .layer(from_fn_with_state(state.clone(), middleware::https_redirect))
        .layer(from_fn(middleware::security_headers))
        .layer(from_fn_with_state(state.clone(), middleware::observe))
        .with_state(state)
}

/// CORS from the `cors_origins` setting: none (same-origin only), `*`, or a list, which may
/// send credentials.
fn cors(origins: &[String]) -> CorsLayer {
    let exposed = [
        HeaderName::from_static("ratelimit"),
        HeaderName::from_static("ratelimit-policy"),
        header::RETRY_AFTER,
        header::LOCATION,
        header::LINK,
        header::ETAG,
        HeaderName::from_static("idempotent-replayed"),
        middleware::X_REQUEST_ID.clone(),
    ];
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            middleware::X_REQUEST_ID.clone(),
        ])
        .expose_headers(exposed)
        .max_age(std::time::Duration::from_secs(3600));
    if origins.iter().any(|origin| origin == "*") {
        base.allow_origin(AllowOrigin::any())
    } else if origins.is_empty() {
        CorsLayer::new()
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|origin| HeaderValue::from_str(origin).ok())
            .collect();
        base.allow_origin(list).allow_credentials(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, http::Request, routing::get};
    use outgrow_platform::{config::Settings, shutdown::Shutdown};
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_gets_an_opaque_500_problem_with_the_request_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = Settings {
            data_dir: dir.path().to_owned(),
            jwt_keys: Some("k:0123456789abcdef0123456789abcdef".to_owned().into()),
            metrics_enabled: false,
            ..Settings::default()
        };
        let state = crate::state::App::build(settings, Shutdown::new())
            .await
            .expect("state");
        let routes = Router::new().route(
            "/boom",
            get(|| async {
                let secret = "connection string with password";
                if !secret.is_empty() {
                    panic!("{secret}");
                }
            }),
        );
        let app = with_middleware(routes, state);

        let response = app
            .oneshot(
                Request::get("/boom")
                    .header("x-request-id", "panic-1")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["x-request-id"], "panic-1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], error::PROBLEM_JSON);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(problem["type"], "/problems/internal");
        assert_eq!(problem["request_id"], "panic-1");
        assert!(
            !String::from_utf8_lossy(&body).contains("password"),
            "no cause leaks"
        );
    }
}
