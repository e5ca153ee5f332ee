//! The HTTP API: routes per feature, the OpenAPI document generated from them, and the
//! middleware stack every request passes through.
//!
//! The middleware stack ([`stack`]), outermost first: observe (request id, span, latency
//! histogram, access log, security headers, HTTPS redirect) → compression → CORS → guard
//! (problem+json for every error, catch-panic, timeout (408), authentication, the rate limit
//! and body limit (413) of the route's group) → handler.

/// A feature's router: its routes separated by `;`, each route the handlers of one path
/// (`list_orders, create_order`), mounted through `routes!`, so that a route and its operation in
/// the OpenAPI document come from the same `#[utoipa::path]`.
macro_rules! feature_router {
    ($($($handler:path),+);+ $(;)?) => {
        utoipa_axum::router::OpenApiRouter::new()
            $(.routes(utoipa_axum::routes!($($handler),+)))+
    };
}

pub mod admin;
pub mod analytics;
pub mod auth;
pub mod authn;
pub mod error;
pub mod events;
pub mod exports;
pub mod extract;
pub mod middleware;
pub mod operation_links;
pub mod ops;
pub mod orders;
pub mod paging;
pub mod products;
pub mod reply;
pub mod request_id;
pub mod responses;
pub mod stack;
pub mod uploads;
pub mod users;
pub mod web;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Method, header},
};
use tower_http::{
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
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
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_api().1
}

/// The API's router and its document, with the answers of the middleware stack and the links
/// between operations added.
fn documented_api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = api().split_for_parts();
    responses::document_stack_answers(&mut openapi, stack::ADMIN_ONLY_OUTSIDE_ADMIN_TAG);
    operation_links::document_links(&mut openapi);
    (router, openapi)
}

/// The routes with their OpenAPI descriptions, each declared with its full path and merged
/// into one flat router: nested routers match twice and rebuild the URI for the inner one, on
/// every request. Rate and body limits are not layered here: the guard applies those of each
/// route's group ([`stack::RouteGroup`]).
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(admin::router())
        .merge(analytics::router())
        .merge(uploads::router())
        .merge(exports::router())
        .merge(products::router())
        .merge(orders::router())
        .merge(events::router())
        .merge(users::router())
        .merge(ops::router())
}

/// The whole application: API, docs and the middleware stack.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = documented_api();
    with_middleware(api.merge(undocumented(openapi)), state)
}

/// A route served outside the OpenAPI document, and why it is left out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UndocumentedRoute {
    /// The one method it answers (`HEAD` follows `GET`).
    pub method: &'static str,
    /// Its path template, as the router matches it (`{*rest}`: any rest of the path).
    pub path: &'static str,
    /// Why it is not in the document.
    pub reason: &'static str,
}

/// Where the docs page is served.
const DOCS_PATH: &str = "/api/docs";
/// Where the OpenAPI document is served.
const OPENAPI_PATH: &str = "/api/openapi.json";

/// Every route the router serves besides the documented ones: the routes that
/// [`undocumented`] mounts. The route inventory test holds the document, this list and what
/// the server answers to one another.
pub fn undocumented_routes() -> Vec<UndocumentedRoute> {
    const DOCS_UI: &str = "the docs UI (Swagger UI, vendored) is for people, not an API";
    let docs = [
        UndocumentedRoute {
            method: "GET",
            path: OPENAPI_PATH,
            reason: "the OpenAPI document itself",
        },
        UndocumentedRoute {
            method: "GET",
            path: DOCS_PATH,
            reason: "redirects to the docs UI's page (/api/docs/)",
        },
        UndocumentedRoute {
            method: "GET",
            path: "/api/docs/",
            reason: DOCS_UI,
        },
        UndocumentedRoute {
            method: "GET",
            path: "/api/docs/{*rest}",
            reason: DOCS_UI,
        },
    ];
    docs.into_iter().chain(web::routes().iter().copied()).collect()
}

/// The one place routes outside the document are mounted, each listed in
/// [`undocumented_routes`]: the OpenAPI document and the docs UI, both served from the binary
/// (Swagger UI is vendored: the docs work without network access), and the browser UI
/// ([`web`], whose routes come from one table).
fn undocumented(openapi: utoipa::openapi::OpenApi) -> Router<AppState> {
    let docs = Router::from(SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, openapi)).layer(
        SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'",
            ),
        ),
    );
    docs.merge(web::router())
}

/// Wraps `routes` in the full middleware stack (see the module docs for the order), composed
/// statically and applied once.
fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    let stack = tower::ServiceBuilder::new()
        .layer(stack::ObserveLayer(state.clone()))
        .layer(CompressionLayer::new())
        // Without configured origins the API is same-origin only: no CORS layer (and no
        // `Vary: Origin` on every response).
        .option_layer(cors(&state.settings.cors_origins))
        .layer(stack::GuardLayer(state.clone()))
        // The guard limits bodies per route group; axum's own default (2 MB) must not cut in.
        .layer(DefaultBodyLimit::disable());
    routes.fallback(web::not_found).layer(stack).with_state(state)
}

/// CORS from the `cors_origins` setting: none (same-origin only), `*`, or a list, which may
/// send credentials.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let exposed = [
        HeaderName::from_static("ratelimit"),
        HeaderName::from_static("ratelimit-policy"),
        header::RETRY_AFTER,
        header::LOCATION,
        header::LINK,
        header::ETAG,
        HeaderName::from_static("idempotent-replayed"),
        request_id::X_REQUEST_ID.clone(),
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
            request_id::X_REQUEST_ID.clone(),
        ])
        .expose_headers(exposed)
        .max_age(std::time::Duration::from_secs(3600));
    if origins.iter().any(|origin| origin == "*") {
        Some(base.allow_origin(AllowOrigin::any()))
    } else if origins.is_empty() {
        None
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|origin| HeaderValue::from_str(origin).ok())
            .collect();
        Some(base.allow_origin(list).allow_credentials(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, extract::State, http::Request, routing::get};
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

        assert_eq!(response.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
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

    /// With error tracking on, a handler's panic reaches the error tracker (a local HTTP
    /// receiver of the SDK's envelopes) once — as the panic, with its backtrace and the
    /// request's id and route — and not a second time as a 500 answer.
    // Two threads: the receiver must answer while the SDK's flush blocks its caller.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_is_reported_once_with_the_request_id_and_route() {
        use std::sync::{Arc, Mutex};
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let receiver = Router::new()
            .fallback(
                |State(received): State<Arc<Mutex<Vec<String>>>>, body: axum::body::Bytes| async move {
                    received
                        .lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&body).into_owned());
                    "{}"
                },
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, receiver).await });

        let dir = tempfile::tempdir().expect("temp dir");
        let settings = Settings {
            data_dir: dir.path().to_owned(),
            jwt_keys: Some("k:0123456789abcdef0123456789abcdef".to_owned().into()),
            metrics_enabled: false,
            sentry_dsn: Some(format!("http://0123456789abcdef0123456789abcdef@{address}/7").into()),
            ..Settings::default()
        };
        let tracking = outgrow_platform::telemetry::error_tracking::init(&settings).expect("init");
        let state = crate::state::App::build(settings, Shutdown::new())
            .await
            .expect("state");
        let routes = Router::new().route(
            "/orders/{id}",
            get(|| async {
                let user = "someone@example.com";
                if !user.is_empty() {
                    panic!("no order for {user}");
                }
            }),
        );
        let response = with_middleware(routes, state)
            .oneshot(
                Request::get("/orders/1")
                    .header("x-request-id", "panic-2")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let flushed = tokio::task::spawn_blocking(move || tracking.flush(std::time::Duration::from_secs(5)))
            .await
            .expect("flush");
        assert!(flushed, "every event sent");

        let envelopes = received.lock().expect("lock").clone();
        let events: Vec<serde_json::Value> = envelopes
            .iter()
            .flat_map(|envelope| envelope.lines().skip(1).collect::<Vec<_>>())
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|item| item.get("event_id").is_some() && item.get("level").is_some())
            .collect();
        assert_eq!(events.len(), 1, "one event: {envelopes:?}");
        let event = &events[0];
        assert_eq!(event["tags"]["request_id"], "panic-2");
        assert_eq!(event["tags"]["route"], "/orders/{id}");
        assert_eq!(event["level"], "fatal");
        let exception = &event["exception"]["values"][0];
        assert_eq!(exception["value"], "no order for [redacted]", "{event}");
        assert!(
            exception["stacktrace"]["frames"]
                .as_array()
                .is_some_and(|frames| !frames.is_empty())
        );
        assert!(!envelopes.concat().contains("someone@example.com"));
    }
}
