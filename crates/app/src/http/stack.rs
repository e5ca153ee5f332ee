//! The middleware stack, as two hand-written services composed around every route:
//!
//! ```text
//! Observe → compression → CORS → Guard → handler
//! ```
//!
//! - [`Observe`] (outermost): request id and the log context of the request,
//!   `http_request_duration_seconds`, the access log line, security headers, and the HTTPS
//!   redirect.
//! - compression and CORS (tower-http): CORS answers preflights before anything below runs.
//! - [`Guard`]: problem+json for every error, catch-panic → 500, authentication, the rate
//!   limit and body limit of the route's group, the handler's timeout → 408, `no-store` on the
//!   API.
//!
//! Why not one `axum::middleware::from_fn` per concern, as before: axum wraps every route in
//! every layer separately, and a layered route clones its whole inner stack on each call — with
//! a dozen layers that was dozens of allocations per request, more than the handler itself
//! costs (bench/RESULTS.md has the profile). Composed statically and applied once, the stack
//! costs two boxed futures and one clone of the route per request.

use std::{
    convert::Infallible,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    body::Body,
    extract::{MatchedPath, Request},
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::FutureExt;
use outgrow_platform::{
    ratelimit::RatePolicy,
    telemetry::{REQUEST, RequestContext, error_tracking},
};
use sentry::SentryFutureExt;
use tower::{Layer, Service};

use super::{
    authn,
    error::ApiError,
    middleware,
    request_id::{X_REQUEST_ID, incoming_request_id, new_request_id},
};
use crate::state::AppState;

type BoxedResponse = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// Declares the layer `$layer(pub AppState)`, which wraps a service in `$service { state, inner }`.
macro_rules! state_layer {
    ($(#[doc = $doc:literal])* $layer:ident => $service:ident) => {
        $(#[doc = $doc])*
        #[derive(Clone)]
        pub struct $layer(pub AppState);

        impl<S> Layer<S> for $layer {
            type Service = $service<S>;
            fn layer(&self, inner: S) -> $service<S> {
                $service {
                    state: self.0.clone(),
                    inner,
                }
            }
        }
    };
}

state_layer! {
    /// The outermost layer: see [`Observe`].
    ObserveLayer => Observe
}

/// Request id and log context, latency histogram, access log, security headers, HTTPS
/// redirect.
#[derive(Clone)]
pub struct Observe<S> {
    state: AppState,
    inner: S,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Error = Infallible> + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures::future::Either<std::future::Ready<Result<Response, Infallible>>, BoxedResponse>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        use futures::future::Either;
        if let Some(response) = liveness(&self.state, &request) {
            return Either::Left(std::future::ready(Ok(response)));
        }
        let state = self.state.clone();
        // The id's bytes are shared (reference counted) by the request header, the log context,
        // problem bodies and the response header.
        let request_id = incoming_request_id(&request).unwrap_or_else(new_request_id);
        let id_header = HeaderValue::from_maybe_shared(request_id.clone()).ok();
        if let Some(value) = &id_header {
            request.headers_mut().insert(X_REQUEST_ID.clone(), value.clone());
        }
        let context = RequestContext {
            id: request_id,
            method: middleware::method_label(request.method()),
            route: middleware::route_label(request.extensions().get::<MatchedPath>()),
        };
        let over_https = middleware::over_https(&request, &state.settings.trusted_proxies);
        let started = Instant::now();
        let in_flight = middleware::InFlight::start();
        // The inner stack is called here, synchronously, so that it needs no clone; the work
        // it defers happens when its future is polled below.
        let served: Result<S::Future, Response> = match middleware::https_redirect(&state, &request) {
            Some(redirect) => Err(redirect),
            None => Ok(self.inner.call(request)),
        };
        let (method, route) = (context.method, context.route);
        // With error tracking on, the request gets a hub tagged with its id and route: a panic
        // while serving it is reported through it, and so is a 5xx answer (below).
        let hub = error_tracking::request_hub(&context.id, method, route);
        let report_to = hub.clone();
        // Every line logged while the request is served carries the context (see
        // `outgrow_platform::telemetry::REQUEST`), the access log line included.
        let observed = REQUEST.scope(context, async move {
            let mut response = match served {
                Err(redirect) => redirect,
                Ok(served) => match served.await {
                    Ok(response) => response.into_response(),
                    Err(never) => match never {},
                },
            };
            drop(in_flight);
            middleware::record_request(&state, method, route, response.status(), started.elapsed());
            if let Some(hub) = report_to {
                let status = response.status().as_u16();
                // A panic was reported by the panic hook already, with its backtrace.
                if error_tracking::is_reported_status(status)
                    && response.extensions().get::<Panicked>().is_none()
                {
                    error_tracking::report_server_error(&hub, method, route, status);
                }
            }
            let headers = response.headers_mut();
            middleware::add_security_headers(headers, over_https);
            if let Some(value) = id_header {
                headers.insert(X_REQUEST_ID.clone(), value);
            }
            close_if_draining(&state, headers);
            Ok(response)
        });
        Either::Right(match hub {
            None => Box::pin(observed),
            Some(hub) => Box::pin(observed.bind_hub(hub)),
        })
    }
}

/// Marks a response built for a panic, which the panic hook has reported already.
#[derive(Clone, Copy, Debug)]
struct Panicked;

/// The liveness probe, answered here: `GET /healthz` checks nothing by design (a database
/// outage must not make an orchestrator restart every instance), so it needs nothing below
/// this layer. Orchestrators and load balancers call it every few seconds on every instance;
/// answered in place it costs a fraction of a request (bench/RESULTS.md), yet it is counted in
/// `http_request_duration_seconds`, carries an `X-Request-Id` (the one it was sent, or a fresh
/// one) and the security headers like any other response; no CORS (a probe is not called
/// from a browser) and no access-log line. `None` for every other request.
fn liveness(state: &AppState, request: &Request) -> Option<Response> {
    const ROUTE: &str = "/healthz";
    let matched = request.extensions().get::<MatchedPath>();
    if matched.is_none_or(|path| path.as_str() != ROUTE)
        || !matches!(*request.method(), Method::GET | Method::HEAD)
    {
        return None;
    }
    let started = Instant::now();
    // Room for every header at once (the map would otherwise grow twice).
    let mut headers = axum::http::HeaderMap::with_capacity(8);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    middleware::add_security_headers(
        &mut headers,
        middleware::over_https(request, &state.settings.trusted_proxies),
    );
    let id = incoming_request_id(request).unwrap_or_else(new_request_id);
    if let Ok(value) = HeaderValue::from_maybe_shared(id) {
        headers.insert(X_REQUEST_ID.clone(), value);
    }
    close_if_draining(state, &mut headers);
    let mut response = Response::new(Body::from(super::ops::LIVENESS_BODY));
    *response.headers_mut() = headers;
    middleware::record_request(
        state,
        middleware::method_label(request.method()),
        ROUTE,
        StatusCode::OK,
        started.elapsed(),
    );
    Some(response)
}

/// While the instance drains (after SIGTERM, for `shutdown_delay`), every response says
/// `Connection: close` and hyper closes the connection after writing it. A load balancer's
/// pooled keep-alive connections to this instance are thus gone by the time the listener
/// closes: its next request opens a new connection, which is refused once the listener is
/// closed — and a refused connection is safe to retry on another instance for any method,
/// whereas a request sent on a reused connection that the server closes under it is not
/// (nginx does not retry a POST it has sent).
fn close_if_draining(state: &AppState, headers: &mut axum::http::HeaderMap) {
    if state.shutdown.is_draining() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

state_layer! {
    /// The innermost layer: see [`Guard`].
    GuardLayer => Guard
}

/// Problem details, catch-panic, authentication, rate and body limits, timeout.
#[derive(Clone)]
pub struct Guard<S> {
    state: AppState,
    inner: S,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxedResponse;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> BoxedResponse {
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let guarded = AssertUnwindSafe(guard(&state, ready, request)).catch_unwind();
            let response = match guarded.await {
                Ok(response) => response,
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("(no message)");
                    tracing::error!(panic = message, "the handler panicked");
                    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    response.extensions_mut().insert(Panicked);
                    response
                }
            };
            let panicked = response.extensions().get::<Panicked>().copied();
            let mut response = middleware::problem_details(response).await;
            if let Some(mark) = panicked {
                response.extensions_mut().insert(mark);
            }
            Ok(response)
        })
    }
}

async fn guard<S>(state: &AppState, mut inner: S, mut request: Request) -> Response
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    let group = RouteGroup::of(
        request.extensions().get::<MatchedPath>().map(MatchedPath::as_str),
        request.method(),
    );
    // A browser page (not the API) that asked for HTML gets the guard's refusals (a cross-site
    // write, a rate limit) as HTML pages; everyone else problem+json.
    let page = !group.api && super::web::page::wants_html(request.headers());
    let refuse = |error: ApiError| {
        if page {
            super::web::error::PageError::from(error).into_response()
        } else {
            error.into_response()
        }
    };
    // U+0000 in a path or query parameter is refused here, for every route at once (request
    // bodies: `ApiJson`): PostgreSQL's `text` cannot hold it.
    let nul = request
        .uri()
        .path_and_query()
        .is_some_and(|target| super::extract::percent_encoded_nul(target.as_str().as_bytes()));
    let resolved = if nul {
        Err(ApiError::BadRequest(super::extract::NUL_REFUSED.into()))
    } else {
        authn::resolve(state, request.method(), request.headers()).await
    };
    let mut response = match resolved {
        Err(error) => refuse(error),
        Ok(authentication) => {
            let limit = group.policy(state).map(|policy| {
                let key = middleware::rate_limit_key(&policy, &authentication, &request, state);
                (policy, key)
            });
            request.extensions_mut().insert(authentication);
            match limit {
                None => handle(state, group, &mut inner, request).await,
                Some((policy, key)) => {
                    let checking = Instant::now();
                    let decision = state.rate_limiter.check(&policy, &key).await;
                    outgrow_platform::telemetry::observe(
                        "rate_limit_check_duration_seconds",
                        &[("backend", state.rate_limit_backend)],
                        checking.elapsed().as_secs_f64(),
                    );
                    let mut response = if decision.allowed {
                        handle(state, group, &mut inner, request).await
                    } else {
                        metrics::counter!("rate_limit_rejections_total", "policy" => policy.name)
                            .increment(1);
                        refuse(ApiError::RateLimited(decision.retry_after_secs().unwrap_or(1)))
                    };
                    middleware::add_rate_limit_headers(response.headers_mut(), &policy, &decision);
                    response
                }
            }
        }
    };
    // Room for the headers still to come (rate limit, cache, security, request id) at once,
    // rather than growing the map two or three times.
    response.headers_mut().reserve(12);
    if group.api {
        // Answers about accounts and tokens must never be stored by a shared cache; public
        // catalog reads set their own `Cache-Control`.
        response
            .headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    response
}

/// Runs the handler: refuses a body announced as larger than the group's limit at once
/// (413), stops reading one that turns out larger (the extractors answer 413), and answers 408
/// when the handler runs past `request_timeout`. Authentication and rate limiting, before it,
/// are bounded by their stores' own timeouts (`redis_timeout`, `database_acquire_timeout`).
async fn handle<S>(state: &AppState, group: RouteGroup, inner: &mut S, request: Request) -> Response
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    let limit = group.body_limit(state);
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if announced.is_some_and(|length| length > limit) {
        if group.uploads && !group.api {
            // A browser's upload form: a page naming the limit, not problem+json.
            return super::web::account::uploads::file_too_large(state.settings.upload_limit_bytes)
                .into_response();
        }
        return ApiError::PayloadTooLarge.into_response();
    }
    // A request without a body (most reads) has nothing to limit.
    let request = if announced == Some(0) || axum::body::HttpBody::is_end_stream(request.body()) {
        request
    } else {
        request.map(|body| Body::new(http_body_util::Limited::new(body, limit)))
    };
    match within(state.settings.request_timeout, inner.call(request)).await {
        Some(Ok(response)) => response.into_response(),
        Some(Err(never)) => match never {},
        None => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

/// `future`'s output, or `None` when it runs longer than `limit`. A future that is done at its
/// first poll (a handler answering from memory) never arms a timer.
async fn within<F: Future>(limit: std::time::Duration, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    if let Poll::Ready(output) = futures::poll!(future.as_mut()) {
        return Some(output);
    }
    tokio::time::timeout(limit, future).await.ok()
}

/// Operations only administrators may call outside the `admin` tag (the catalog's writes and
/// the list of users): their 403 is documented with the admin ones'.
pub(crate) const ADMIN_ONLY_OUTSIDE_ADMIN_TAG: &[(&str, &str)] = &[
    ("POST", "/api/v1/products"),
    ("PATCH", "/api/v1/products/{id}"),
    ("DELETE", "/api/v1/products/{id}"),
    ("GET", "/api/v1/users"),
];

/// Which limits apply to a route, decided by its path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteGroup {
    policy: Option<PolicyName>,
    uploads: bool,
    api: bool,
}

/// The configured rate policies (see `state::Policies`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyName {
    /// Most of the API, per user or address.
    Default,
    /// Sign-in and account creation, per address.
    Auth,
    /// Creating data exports, per user.
    Export,
    /// Placing orders, per user.
    Order,
}

impl RouteGroup {
    /// The group of the route `template` (`None`: no route matched) called with `method`.
    pub(crate) fn of(template: Option<&str>, method: &Method) -> Self {
        let Some(path) = template.and_then(|template| template.strip_prefix("/api/v1")) else {
            return Self::outside_api(template, method);
        };
        let policy = if path.starts_with("/auth/") {
            PolicyName::Auth
        } else if path == "/exports" && method == Method::POST {
            PolicyName::Export
        } else if path == "/orders" && method == Method::POST {
            PolicyName::Order
        } else {
            PolicyName::Default
        };
        Self {
            policy: Some(policy),
            uploads: path == "/uploads" || path.starts_with("/uploads/"),
            api: true,
        }
    }

    /// Routes outside the API. Probes, metrics, the API docs, assets, unknown paths and page
    /// reads: never rate limited, so that orchestrators, scrapers and browsers always get
    /// through. Form posts of the browser UI: the sign-in and registration forms are limited as
    /// the API's `/auth/` routes are, the others as the rest of the API; the forms that upload
    /// images take upload-sized bodies.
    fn outside_api(template: Option<&str>, method: &Method) -> Self {
        let posted_page = template
            .filter(|path| *method == Method::POST && !path.starts_with("/api/") && *path != "/metrics");
        let Some(path) = posted_page else {
            return Self {
                policy: None,
                uploads: false,
                api: false,
            };
        };
        Self {
            policy: Some(match path {
                "/login" | "/register" => PolicyName::Auth,
                "/account/exports" => PolicyName::Export,
                "/checkout" => PolicyName::Order,
                _ => PolicyName::Default,
            }),
            uploads: super::web::UPLOAD_FORMS.contains(&path),
            api: false,
        }
    }

    fn policy(&self, state: &AppState) -> Option<RatePolicy> {
        self.policy.map(|name| match name {
            PolicyName::Default => state.policies.default,
            PolicyName::Auth => state.policies.auth,
            PolicyName::Export => state.policies.export,
            PolicyName::Order => state.policies.order,
        })
    }

    fn body_limit(&self, state: &AppState) -> usize {
        if self.uploads {
            // Multipart overhead (boundaries, part headers) on top of the file itself; the
            // handler enforces the exact file limit with a 413 of its own.
            state.settings.upload_limit_bytes + 64 * 1024
        } else {
            state.settings.body_limit_bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_their_rate_limit_groups() {
        let group = |path: &str, method: Method| RouteGroup::of(Some(path), &method).policy;
        assert_eq!(group("/api/v1/auth/login", Method::POST), Some(PolicyName::Auth));
        assert_eq!(
            group("/api/v1/auth/register", Method::POST),
            Some(PolicyName::Auth)
        );
        assert_eq!(group("/api/v1/exports", Method::POST), Some(PolicyName::Export));
        assert_eq!(group("/api/v1/orders", Method::POST), Some(PolicyName::Order));
        assert_eq!(group("/api/v1/orders", Method::GET), Some(PolicyName::Default));
        assert_eq!(
            group("/api/v1/exports/{id}", Method::GET),
            Some(PolicyName::Default)
        );
        assert_eq!(
            group("/api/v1/users/{id}", Method::GET),
            Some(PolicyName::Default)
        );
        assert_eq!(group("/api/v1/me", Method::PATCH), Some(PolicyName::Default));
        assert_eq!(group("/healthz", Method::GET), None);
        assert_eq!(group("/metrics", Method::GET), None);
        assert_eq!(RouteGroup::of(None, &Method::GET).policy, None);
    }

    #[test]
    fn page_reads_are_not_limited_and_form_posts_are_limited_like_the_api() {
        let group = |path: &str, method: Method| RouteGroup::of(Some(path), &method);
        assert_eq!(group("/", Method::GET).policy, None);
        assert_eq!(group("/assets/{*path}", Method::GET).policy, None);
        assert_eq!(group("/login", Method::POST).policy, Some(PolicyName::Auth));
        assert_eq!(group("/register", Method::POST).policy, Some(PolicyName::Auth));
        assert_eq!(
            group("/account/exports", Method::POST).policy,
            Some(PolicyName::Export)
        );
        assert_eq!(group("/checkout", Method::POST).policy, Some(PolicyName::Order));
        assert_eq!(group("/cart", Method::POST).policy, Some(PolicyName::Default));
        assert!(group("/admin/products/{id}", Method::POST).uploads);
        assert!(!group("/cart", Method::POST).uploads);
        assert!(!group("/login", Method::POST).api);
    }

    #[test]
    fn only_upload_routes_take_large_bodies_and_only_the_api_is_no_store() {
        assert!(RouteGroup::of(Some("/api/v1/uploads"), &Method::POST).uploads);
        assert!(RouteGroup::of(Some("/api/v1/uploads/{id}/content"), &Method::GET).uploads);
        assert!(!RouteGroup::of(Some("/api/v1/users/{id}"), &Method::GET).uploads);
        assert!(RouteGroup::of(Some("/api/v1/products"), &Method::GET).api);
        assert!(!RouteGroup::of(Some("/readyz"), &Method::GET).api);
    }
}
