//! The pieces of the middleware stack ([`super::stack`]): the request's metrics and access
//! log, problem+json for every error, security headers, the HTTPS redirect, client addresses
//! and rate-limit keys and headers. Request ids are in [`super::request_id`].

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    sync::{OnceLock, RwLock},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, MatchedPath, Request},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Redirect, Response},
};
use ipnet::IpNet;
use outgrow_platform::ratelimit::{Decision, RatePolicy};

use super::{
    authn::Authentication,
    error::{ApiError, PROBLEM_JSON, Problem},
};
use crate::state::AppState;

/// The matched route's template as a `'static` label (`unmatched` when no route matched), so
/// that labelling a request's metrics and span allocates nothing. Templates come from the
/// router's definition, a fixed set: each is copied once, on its first request.
pub fn route_label(route: Option<&MatchedPath>) -> &'static str {
    static ROUTES: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let Some(route) = route else {
        return "unmatched";
    };
    let routes = ROUTES.get_or_init(RwLock::default);
    if let Some(known) = routes
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(route.as_str())
    {
        return known;
    }
    let mut routes = routes.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = routes.get(route.as_str()) {
        return known;
    }
    let label: &'static str = Box::leak(route.as_str().into());
    routes.insert(label);
    label
}

/// Records a finished request: `http_request_duration_seconds` under the matched route (never
/// the raw path: unbounded label values would blow up Prometheus), and the access log line —
/// a WARN above `slow_request_threshold`. Probes (`/healthz`, `/readyz`) are logged at DEBUG:
/// orchestrators call them every few seconds on every instance, and those lines would bury
/// the requests of users. Called within the request's log context.
pub fn record_request(
    state: &AppState,
    method: &'static str,
    route: &'static str,
    status: StatusCode,
    elapsed: Duration,
) {
    request_histogram(method, route, status).record(elapsed.as_secs_f64());
    let status = status.as_u16();
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if elapsed >= state.settings.slow_request_threshold {
        metrics::counter!("http_slow_requests_total", "method" => method, "route" => route).increment(1);
        tracing::warn!(status, elapsed_ms, "slow request");
    } else if route == "/healthz" || route == "/readyz" {
        tracing::debug!(status, elapsed_ms, "request completed");
    } else {
        tracing::info!(status, elapsed_ms, "request completed");
    }
}

thread_local! {
    /// This thread's handles on `http_request_duration_seconds` by (route, method, status):
    /// finding a labelled series in the registry builds and hashes its whole key, which on a
    /// cached read cost more than the read; a handle found here is one small map lookup.
    static REQUEST_HISTOGRAMS: RefCell<HashMap<(usize, &'static str, u16), metrics::Histogram>> =
        RefCell::new(HashMap::new());
}

/// The latency histogram of one (method, route, status) series.
fn request_histogram(method: &'static str, route: &'static str, status: StatusCode) -> metrics::Histogram {
    // Routes are interned (`route_label`), so the address identifies the template.
    let key = (route.as_ptr() as usize, method, status.as_u16());
    REQUEST_HISTOGRAMS.with_borrow_mut(|histograms| {
        histograms
            .entry(key)
            .or_insert_with(|| {
                metrics::histogram!(
                    "http_request_duration_seconds",
                    "method" => method, "route" => route, "status" => status_label(status)
                )
            })
            .clone()
    })
}

/// The method as a label; methods outside the standard ones are `OTHER`, so that clients
/// cannot create series at will.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The status code as a label, from a table of the usual ones.
fn status_label(status: StatusCode) -> metrics::SharedString {
    const USUAL: [(u16, &str); 16] = [
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (304, "304"),
        (308, "308"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (409, "409"),
        (413, "413"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    match USUAL.iter().find(|(code, _)| *code == status.as_u16()) {
        Some((_, label)) => (*label).into(),
        None => status.as_u16().to_string().into(),
    }
}

/// Counts a request in `http_requests_in_flight` until dropped, so a request whose client
/// disconnects (hyper drops its future) is still counted out.
pub struct InFlight(metrics::Gauge);

thread_local! {
    /// This thread's handle on `http_requests_in_flight` (see `REQUEST_HISTOGRAMS`).
    static IN_FLIGHT: metrics::Gauge = metrics::gauge!("http_requests_in_flight");
}

impl InFlight {
    /// Counts one more request in flight.
    pub fn start() -> Self {
        let gauge = IN_FLIGHT.with(Clone::clone);
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

/// Turns an error response not already problem+json (unknown route, wrong method, timeout,
/// body limit, panic) into one; the request id goes into every problem body. HTML error pages
/// (the browser UI's) are left as they are: they are written for a person.
pub async fn problem_details(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_final = response.headers().get(header::CONTENT_TYPE).is_some_and(|value| {
        value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()) || value.as_bytes().starts_with(b"text/html")
    });
    if is_final {
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

/// The security headers, on every response that did not set its own: those the OWASP REST
/// Security Cheat Sheet asks of an API (`X-Content-Type-Options`, `X-Frame-Options`, a
/// `Content-Security-Policy` allowing nothing); `Referrer-Policy` and
/// `Cross-Origin-Opener-Policy` on HTML only, the one kind of response they apply to (a
/// document that links and opens windows); `Strict-Transport-Security` only when the request
/// came over HTTPS (`over_https`), since RFC 6797 §7.2 forbids it on plain HTTP.
pub fn add_security_headers(headers: &mut HeaderMap, over_https: bool) {
    let always: [(HeaderName, &'static str); 3] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // JSON needs nothing from the page context; pages that do set their own policy.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    for (name, value) in always {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    let html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"text/html"));
    if html {
        headers
            .entry(header::REFERRER_POLICY)
            .or_insert(HeaderValue::from_static("strict-origin-when-cross-origin"));
        headers
            .entry(HeaderName::from_static("cross-origin-opener-policy"))
            .or_insert(HeaderValue::from_static("same-origin"));
    }
    if over_https {
        // Two years, the preload list's floor.
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
}

/// Whether the client reached us over HTTPS: a trusted proxy (which terminated TLS) says so in
/// `X-Forwarded-Proto`. Outgrow itself serves plain HTTP.
pub fn over_https(request: &Request, trusted: &[IpNet]) -> bool {
    request
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
        && from_trusted_proxy(request, trusted)
}

/// The peer address, or the client address a trusted proxy reports in `X-Forwarded-For`
/// (the right-most address that is not itself a trusted proxy: left-most entries are
/// client-controlled and cannot be believed). Hops are read right to left across every
/// `X-Forwarded-For` line; an unreadable hop ends the walk at the last trusted address, since
/// whatever stands left of it was not vouched for by a trusted proxy. (`Forwarded`, RFC 7239,
/// is not read: nginx, the proxy deployed in front, writes `X-Forwarded-For`.)
pub fn client_ip(request: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>()?.0.ip();
    Some(forwarded_client(peer, request.headers(), trusted))
}

/// The client's address ([`client_ip`]) as an extractor; `None` without a peer address (a
/// request not from a socket, as in in-process tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl axum::extract::FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(Self(peer.map(|peer| {
            forwarded_client(peer, &parts.headers, &state.settings.trusted_proxies)
        })))
    }
}

/// The client address behind `peer` by the `X-Forwarded-For` lines of `headers` (see
/// [`client_ip`]).
pub fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let lines: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let mut client = peer;
    for hop in lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(|byte| *byte == b','))
    {
        let parsed = std::str::from_utf8(hop)
            .ok()
            .and_then(|hop| hop.trim().parse::<IpAddr>().ok());
        match parsed {
            Some(ip) if is_trusted(ip, trusted) => client = ip,
            Some(ip) => return ip,
            None => break,
        }
    }
    client
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

/// The redirect to HTTPS when a trusted proxy reports that the client came over plain HTTP.
/// Only GET and HEAD are redirected (308); other methods get 400, since a client that sent a
/// body over plain HTTP has already leaked it. `None`: serve the request.
pub fn https_redirect(state: &AppState, request: &Request) -> Option<Response> {
    let settings = &state.settings;
    let plain_http = request
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"http"));
    if !(settings.https_redirect && plain_http && from_trusted_proxy(request, &settings.trusted_proxies)) {
        return None;
    }
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Some(
        match (
            https_location(request.headers(), path),
            request.method().is_safe(),
        ) {
            (HttpsLocation::At(target), true) => Redirect::permanent(&target.to_string()).into_response(),
            (HttpsLocation::NotAUri, true) => {
                ApiError::BadRequest("invalid Host header".into()).into_response()
            }
            (HttpsLocation::NoHost, _) => {
                ApiError::BadRequest("a Host header is required".into()).into_response()
            }
            (_, false) => ApiError::BadRequest("use HTTPS".into()).into_response(),
        },
    )
}

/// Where the HTTPS redirect of a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpsLocation {
    /// `https://{host}{path_and_query}`.
    At(Uri),
    /// No host made only of letters, digits and `-.:[]`.
    NoHost,
    /// A host of those characters that still makes no URI (`[` alone, say).
    NotAUri,
}

/// Where the HTTPS redirect of `path_and_query` goes: `https://{host}{path_and_query}` for the
/// host the proxy forwarded (`X-Forwarded-Host`, else `Host`), if it is made only of letters,
/// digits and `-.:[]` (a name or address with a port: nothing that could add user info, another
/// path or another authority). A target that is not a path (`OPTIONS *`, say) goes to `/`.
pub fn https_location(headers: &HeaderMap, path_and_query: &str) -> HttpsLocation {
    let path_and_query = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
    match host.map(|host| format!("https://{host}{path_and_query}").parse::<Uri>()) {
        None => HttpsLocation::NoHost,
        Some(Ok(target)) => HttpsLocation::At(target),
        Some(Err(_)) => HttpsLocation::NotAUri,
    }
}

/// Whom a request counts against: the auth policy always limits by client address (these
/// routes are where credential stuffing happens, and the attacker is not signed in); the
/// others by the signed-in user, else by address.
pub fn rate_limit_key(
    policy: &RatePolicy,
    authentication: &Authentication,
    request: &Request,
    state: &AppState,
) -> String {
    match authentication {
        Authentication::Authenticated(principal) if policy.name != state.policies.auth.name => {
            format!("user:{}", principal.user_id)
        }
        _ => match client_ip(request, &state.settings.trusted_proxies) {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".to_owned(),
        },
    }
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
pub fn add_rate_limit_headers(headers: &mut HeaderMap, policy: &RatePolicy, decision: &Decision) {
    static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
    static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
    thread_local! {
        /// A policy's header never changes: rendered once per thread and policy.
        static POLICY_HEADERS: RefCell<HashMap<(usize, u32, Duration), HeaderValue>> =
            RefCell::new(HashMap::new());
    }
    let key = (policy.name.as_ptr() as usize, policy.limit, policy.window);
    let policy_header = POLICY_HEADERS.with_borrow_mut(|rendered| {
        rendered
            .entry(key)
            .or_insert_with(|| owned_header_value(policy.header_value()))
            .clone()
    });
    headers.insert(RATELIMIT_POLICY.clone(), policy_header);
    headers.insert(
        RATELIMIT.clone(),
        owned_header_value(decision.header_value(policy)),
    );
}

/// A header value that takes over `text` without copying it (the texts here are ASCII).
fn owned_header_value(text: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(text)).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn text(status: StatusCode, body: &'static str) -> Response {
        (status, Body::from(body)).into_response()
    }

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn a_plain_text_error_becomes_problem_json() {
        let response = problem_details(text(StatusCode::BAD_REQUEST, "bad thing")).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let problem = body_json(response).await;
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["detail"], "bad thing");
    }

    #[tokio::test]
    async fn a_server_error_becomes_an_opaque_problem_with_the_request_id() {
        let request = outgrow_platform::telemetry::RequestContext {
            id: Bytes::from_static(b"req-1"),
            method: "GET",
            route: "/boom",
        };
        let response = outgrow_platform::telemetry::REQUEST
            .scope(
                request,
                problem_details(text(StatusCode::INTERNAL_SERVER_ERROR, "secret internals")),
            )
            .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let problem = body_json(response).await;
        assert_eq!(problem["type"], "/problems/internal");
        assert_eq!(problem["request_id"], "req-1");
        assert!(!problem.to_string().contains("secret internals"));
    }

    #[tokio::test]
    async fn route_labels_are_the_templates_and_unmatched() {
        use tower::ServiceExt;
        let app = axum::Router::new().route(
            "/users/{id}",
            axum::routing::get(|path: MatchedPath| async move { route_label(Some(&path)) }),
        );
        let response = app
            .oneshot(Request::get("/users/42").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"/users/{id}");
        assert_eq!(route_label(None), "unmatched");
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

    #[test]
    fn an_unreadable_hop_ends_the_walk_at_the_last_trusted_address() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // Skipping `unknown` would believe 1.2.3.4, which no trusted proxy vouched for.
        let garbled = request_from("10.0.0.2:5000", Some("1.2.3.4, unknown, 10.0.0.3"));
        assert_eq!(
            client_ip(&garbled, &trusted),
            Some("10.0.0.3".parse().expect("ip"))
        );
        let mut two_lines = request_from("10.0.0.2:5000", Some("198.51.100.1"));
        two_lines.headers_mut().append(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.2, 10.0.0.9"),
        );
        assert_eq!(
            client_ip(&two_lines, &trusted),
            Some("198.51.100.2".parse().expect("ip"))
        );
        let empty = request_from("10.0.0.2:5000", Some(""));
        assert_eq!(client_ip(&empty, &trusted), Some("10.0.0.2".parse().expect("ip")));
    }
}
