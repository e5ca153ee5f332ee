//! Cross-cutting middleware: request ids and observation, problem+json for every error,
//! security headers, the HTTPS redirect, and rate limiting.

use std::{
    net::{IpAddr, SocketAddr},
    time::Instant,
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, StatusCode, Uri, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use ipnet::IpNet;
use outgrow_platform::ratelimit::RatePolicy;
use tracing::Instrument;

use super::{
    authn::Authentication,
    error::{ApiError, PROBLEM_JSON, Problem},
};
use crate::state::AppState;

/// The request id header, accepted from clients and proxies and echoed on every response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of the current request, for error bodies and logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

tokio::task_local! {
    /// Set for the duration of each request, so error rendering can quote the id.
    pub static CURRENT_REQUEST_ID: String;
}

/// An incoming id is kept when it is short, printable ASCII (it ends up in logs and headers);
/// anything else is replaced by a fresh UUID.
fn incoming_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(&X_REQUEST_ID)?.to_str().ok()?;
    let acceptable = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b));
    acceptable.then(|| value.to_owned())
}

/// Outermost layer: assigns the request id, opens the request span, records the latency
/// histogram under the matched route (never the raw path: unbounded label values would blow
/// up Prometheus), and warns about slow requests.
pub async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let request_id = incoming_request_id(&request).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    request.extensions_mut().insert(RequestId(request_id.clone()));
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request_id = %request_id, %method, route = %route);

    let started = Instant::now();
    let in_flight = InFlight::start();
    let mut response = CURRENT_REQUEST_ID
        .scope(request_id.clone(), next.run(request).instrument(span.clone()))
        .await;
    drop(in_flight);
    let elapsed = started.elapsed();
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method.to_string(), "route" => route.clone(), "status" => status.clone()
    )
    .record(elapsed.as_secs_f64());

    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if elapsed >= state.settings.slow_request_threshold {
            metrics::counter!("http_slow_requests_total", "method" => method.to_string(), "route" => route)
                .increment(1);
            tracing::warn!(status, elapsed_ms, "slow request");
        } else {
            tracing::info!(status, elapsed_ms, "request completed");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// Counts a request in `http_requests_in_flight` until dropped, so a request whose client
/// disconnects (hyper drops its future) is still counted out.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn start() -> Self {
        let gauge = metrics::gauge!("http_requests_in_flight");
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Largest framework error body read to become a problem's detail.
const MAX_DETAIL_BYTES: usize = 2048;

/// Turns every error response not already problem+json (unknown route, wrong method, timeout,
/// body limit, panic) into one, and puts the request id into every problem body.
pub async fn problem_details(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_DETAIL_BYTES)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    // 5xx causes are never shown; framework 4xx texts are safe and helpful.
    let detail = match status {
        StatusCode::NOT_FOUND => Some("no such resource".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => Some("this method is not allowed on this resource".to_owned()),
        StatusCode::REQUEST_TIMEOUT => Some("the request took too long".to_owned()),
        s if s.is_server_error() => None,
        _ if text.is_empty() => None,
        _ => Some(text),
    };
    let rendered = Problem::new(status, detail).into_response_with(status);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    Response::from_parts(parts, rendered.into_body())
}

/// Security headers on every response that did not set its own.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults: [(HeaderName, &'static str); 6] = [
        // Two years, the preload list's floor. Browsers ignore it over plain HTTP.
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // JSON needs nothing from the page context; pages that do set their own policy.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in defaults {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}

/// The peer address, or the client address a trusted proxy reports in `X-Forwarded-For`
/// (the right-most address that is not itself a trusted proxy: left-most entries are
/// client-controlled and cannot be believed).
pub fn client_ip(request: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>()?.0.ip();
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let forwarded = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(*ip, trusted))
            .unwrap_or(peer),
    )
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

fn from_trusted_proxy(request: &Request, trusted: &[IpNet]) -> bool {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|peer| is_trusted(peer.0.ip(), trusted))
}

/// Redirects to HTTPS when a trusted proxy reports that the client came over plain HTTP.
/// Only GET and HEAD are redirected (308); other methods get 400, since a client that sent a
/// body over plain HTTP has already leaked it.
pub async fn https_redirect(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let settings = &state.settings;
    let plain_http = request
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"http"));
    if !(settings.https_redirect && plain_http && from_trusted_proxy(&request, &settings.trusted_proxies)) {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get("x-forwarded-host")
        .or_else(|| request.headers().get(header::HOST))
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    match (host, request.method().is_safe()) {
        (Some(host), true) => match format!("https://{host}{path}").parse::<Uri>() {
            Ok(target) => Redirect::permanent(&target.to_string()).into_response(),
            Err(_) => ApiError::BadRequest("invalid Host header".into()).into_response(),
        },
        (Some(_), false) => ApiError::BadRequest("use HTTPS".into()).into_response(),
        (None, _) => ApiError::BadRequest("a Host header is required".into()).into_response(),
    }
}

/// Default policy: keyed by the signed-in user, else by client address.
pub async fn rate_limit_default(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = match request.extensions().get::<Authentication>() {
        Some(Authentication::Authenticated(principal)) => format!("user:{}", principal.user_id),
        _ => address_key(&request, &state),
    };
    enforce(&state, state.policies.default, key, request, next).await
}

/// Export policy: keyed by the signed-in user (exports are expensive per user).
pub async fn rate_limit_export(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = match request.extensions().get::<Authentication>() {
        Some(Authentication::Authenticated(principal)) => format!("user:{}", principal.user_id),
        _ => address_key(&request, &state),
    };
    enforce(&state, state.policies.export, key, request, next).await
}

/// Auth policy: always keyed by client address (these routes are where credential stuffing
/// happens, and the attacker is not signed in).
pub async fn rate_limit_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = address_key(&request, &state);
    enforce(&state, state.policies.auth, key, request, next).await
}

fn address_key(request: &Request, state: &AppState) -> String {
    match client_ip(request, &state.settings.trusted_proxies) {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_owned(),
    }
}

async fn enforce(
    state: &AppState,
    policy: RatePolicy,
    key: String,
    request: Request,
    next: Next,
) -> Response {
    let decision = state.rate_limiter.check(&policy, &key).await;
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        metrics::counter!("rate_limit_rejections_total", "policy" => policy.name).increment(1);
        ApiError::RateLimited(decision.retry_after_secs().unwrap_or(1)).into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("ratelimit-policy", policy.header_value()),
        ("ratelimit", decision.header_value(&policy)),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, body::Body, routing::get};

    fn text(status: StatusCode, body: &'static str) -> Response {
        (status, Body::from(body)).into_response()
    }
    use tower::ServiceExt;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn a_plain_text_error_becomes_problem_json() {
        let app = Router::new()
            .route(
                "/teapot",
                get(|| async { text(StatusCode::BAD_REQUEST, "bad thing") }),
            )
            .layer(axum::middleware::from_fn(problem_details));
        let response = app
            .oneshot(Request::get("/teapot").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let problem = body_json(response).await;
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["detail"], "bad thing");
    }

    #[tokio::test]
    async fn a_panic_becomes_an_opaque_500_problem() {
        let app = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("secret internals")
                    }
                }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::new())
            .layer(axum::middleware::from_fn(problem_details));
        let response = CURRENT_REQUEST_ID
            .scope(
                "req-1".into(),
                app.oneshot(Request::get("/boom").body(Body::empty()).expect("request")),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let problem = body_json(response).await;
        assert_eq!(problem["type"], "/problems/internal");
        assert_eq!(problem["request_id"], "req-1");
        assert!(!problem.to_string().contains("secret internals"));
    }

    fn request_from(peer: &str, forwarded: Option<&'static str>) -> Request {
        let mut request = Request::get("/").body(Body::empty()).expect("request");
        let peer: SocketAddr = peer.parse().expect("addr");
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(value) = forwarded {
            request
                .headers_mut()
                .insert("x-forwarded-for", HeaderValue::from_static(value));
        }
        request
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let spoofed = request_from("203.0.113.9:5000", Some("1.2.3.4"));
        assert_eq!(
            client_ip(&spoofed, &trusted),
            Some("203.0.113.9".parse().expect("ip"))
        );
        let proxied = request_from("10.0.0.2:5000", Some("1.2.3.4, 198.51.100.7, 10.0.0.3"));
        assert_eq!(
            client_ip(&proxied, &trusted),
            Some("198.51.100.7".parse().expect("ip"))
        );
    }
}
