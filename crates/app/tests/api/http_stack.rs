//! The middleware stack: request ids, security headers, compression, CORS, the HTTPS
//! redirect, body limits, timeouts, slow-request logs and rate limiting.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

/// The access log line of a request: "request completed", or "slow request" (WARN) when it
/// took longer than `slow_request_threshold` — which a loaded CI machine can make any request.
fn is_access_log(event: &Value) -> bool {
    event["message"] == "request completed" || event["message"] == "slow request"
}

#[tokio::test]
async fn a_valid_request_id_is_echoed_and_appears_in_the_logs() {
    let app = TestApp::spawn().await;

    let response = app
        .get_with_header("/api/v1/products", "x-request-id", "trace-abc-123")
        .await;

    assert_header(&response, "x-request-id", Some("trace-abc-123"));
    let line = app
        .wait_for_log(|event| is_access_log(event) && event.to_string().contains("trace-abc-123"))
        .await;
    assert_eq!(line["spans"][0]["route"], "/api/v1/products");
    assert_eq!(line["spans"][0]["method"], "GET");
}

#[tokio::test]
async fn probes_are_not_in_the_access_log_at_the_default_level() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz", "/api/v1/products"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
    }

    // The products request is logged; the probes before it are not.
    app.wait_for_log(|event| is_access_log(event) && event["spans"][0]["route"] == "/api/v1/products")
        .await;
    let logged_probes: Vec<String> = app
        .logs()
        .into_iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
        .filter(|event| {
            // A probe slower than the slow-request threshold is a WARN worth having; what
            // must not be logged is the routine line for every probe.
            event["message"] == "request completed"
                && ["/healthz", "/readyz"].contains(&event["spans"][0]["route"].as_str().unwrap_or_default())
        })
        .map(|event| event.to_string())
        .collect();
    assert!(logged_probes.is_empty(), "{logged_probes:?}");
}

#[tokio::test]
async fn a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one() {
    let app = TestApp::spawn().await;
    let fresh = app.get("/healthz").await;
    let unsafe_id = app
        .get_with_header("/healthz", "x-request-id", "a b<script>")
        .await;
    for response in [fresh, unsafe_id] {
        let id = header(&response, "x-request-id").expect("id");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    }
}

#[tokio::test]
async fn every_error_carries_the_request_id_in_its_body() {
    let app = TestApp::spawn().await;
    let response = app.get_with_header("/api/v1/me", "x-request-id", "err-42").await;
    let problem = assert_problem(response, 401).await;
    assert_eq!(problem["request_id"], "err-42");
}

#[tokio::test]
async fn responses_carry_the_security_headers_for_their_kind() {
    let app = TestApp::with_settings(&[("OUTGROW_TRUSTED_PROXIES", "127.0.0.0/8")]).await;

    // Every response: no sniffing, no framing, a CSP that allows nothing.
    let json = app.get("/healthz").await;
    for (name, value) in [("x-content-type-options", "nosniff"), ("x-frame-options", "DENY")] {
        assert_eq!(header(&json, name).as_deref(), Some(value), "{name}");
    }
    assert!(
        header(&json, "content-security-policy")
            .expect("CSP")
            .contains("frame-ancestors 'none'")
    );
    // HSTS never over plain HTTP (RFC 6797 §7.2)…
    assert_header(&json, "strict-transport-security", None);
    // …and always when a trusted proxy says the client came over HTTPS.
    let over_https = app
        .get_with_header("/healthz", "x-forwarded-proto", "https")
        .await;
    assert_header(
        &over_https,
        "strict-transport-security",
        Some("max-age=63072000; includeSubDomains"),
    );
    // Document-only headers on HTML (the API docs page), not on JSON.
    assert_header(&json, "referrer-policy", None);
    let page = app.get("/api/docs/").await;
    assert_eq!(page.status(), 200);
    assert_header(&page, "referrer-policy", Some("strict-origin-when-cross-origin"));
    assert_header(&page, "cross-origin-opener-policy", Some("same-origin"));
}

#[tokio::test]
async fn large_responses_are_compressed_when_the_client_accepts_it() {
    let app = TestApp::spawn().await;
    let plain = app.get("/api/openapi.json").await;
    let gzip = app
        .get_with_header("/api/openapi.json", "accept-encoding", "gzip")
        .await;
    let brotli = app
        .get_with_header("/api/openapi.json", "accept-encoding", "br")
        .await;

    assert_header(&plain, "content-encoding", None);
    assert_header(&gzip, "content-encoding", Some("gzip"));
    assert_header(&brotli, "content-encoding", Some("br"));
    let plain_len = plain.bytes().await.expect("body").len();
    let gzip_len = gzip.bytes().await.expect("body").len();
    assert!(
        gzip_len * 3 < plain_len,
        "gzip {gzip_len} B vs plain {plain_len} B"
    );
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let app = TestApp::with_settings(&[(
        "OUTGROW_CORS_ORIGINS",
        "https://shop.example,https://admin.example",
    )])
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/me"))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };

    let allowed = preflight("https://shop.example").await.expect("preflight");
    let refused = preflight("https://evil.example").await.expect("preflight");

    assert_header(
        &allowed,
        "access-control-allow-origin",
        Some("https://shop.example"),
    );
    assert_header(&allowed, "access-control-allow-credentials", Some("true"));
    assert!(
        header(&allowed, "access-control-allow-methods")
            .expect("methods")
            .contains("PATCH")
    );
    assert_header(&refused, "access-control-allow-origin", None);
    let simple = app
        .get_with_header("/api/v1/products", "origin", "https://admin.example")
        .await;
    assert_header(
        &simple,
        "access-control-allow-origin",
        Some("https://admin.example"),
    );
}

#[tokio::test]
async fn plain_http_from_a_trusted_proxy_is_redirected_to_https() {
    let app = TestApp::with_settings(&[("OUTGROW_TRUSTED_PROXIES", "127.0.0.0/8")]).await;

    let redirected = app
        .client
        .get(app.url("/api/v1/me?x=1"))
        .header("x-forwarded-proto", "http")
        .header("host", "shop.example")
        .send()
        .await
        .expect("get");
    let already_https = app
        .get_with_header("/healthz", "x-forwarded-proto", "https")
        .await;
    let post = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-proto", "http")
        .json(&json!({}))
        .send()
        .await
        .expect("post");

    assert_eq!(redirected.status(), 308);
    assert_header(
        &redirected,
        "location",
        Some("https://shop.example/api/v1/me?x=1"),
    );
    assert_eq!(already_https.status(), 200);
    assert_problem(post, 400).await;
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let app = TestApp::spawn().await;
    let response = app.get_with_header("/healthz", "x-forwarded-proto", "http").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let app = TestApp::with_settings(&[("OUTGROW_BODY_LIMIT_BYTES", "2048")]).await;
    let big_name = "x".repeat(4096);

    let declared = app.register("ann@example.org", PASSWORD, &big_name).await;

    let problem = assert_problem(declared, 413).await;
    assert_eq!(problem["type"], "/problems/payload-too-large");
    // A streamed body without Content-Length is cut off at the limit too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(b"{\"name\":\"".to_vec()),
        Ok(vec![b'x'; 4096]),
        Ok(b"\"}".to_vec()),
    ];
    let streamed = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("post");
    assert_problem(streamed, 413).await;
}

#[tokio::test]
async fn a_request_that_outlives_the_timeout_gets_408() {
    let app = TestApp::with_settings(&[("OUTGROW_REQUEST_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(&app.address).await.expect("connect");
    // Headers promise 100 bytes; only 10 arrive, so the handler waits on the body.
    stream
        .write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"email\":")
        .await
        .expect("write");

    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.expect("read");
            response.extend_from_slice(&buffer[..n]);
            if n == 0 || String::from_utf8_lossy(&response).contains("\"status\":408") {
                break;
            }
        }
    })
    .await;

    assert!(read.is_ok(), "no answer within 10 s");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
}

/// Reads until the server closes the connection (or `limit` passes); returns what arrived and
/// whether it was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

/// Slowloris: a client that dribbles its request head one byte at a time is cut off at
/// `header_read_timeout`, however steadily it sends; so is a connection that sends nothing.
#[tokio::test]
async fn a_request_head_sent_too_slowly_or_not_at_all_is_cut_off() {
    let app = TestApp::with_settings(&[("OUTGROW_HEADER_READ_TIMEOUT", "1s")]).await;
    let mut dribbling = TcpStream::connect(&app.address).await.expect("connect");
    let mut silent = TcpStream::connect(&app.address).await.expect("connect");
    let started = std::time::Instant::now();
    let head = b"GET /healthz HTTP/1.1
host: x
x-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa

";
    let mut cut_off_after = None;
    for byte in head {
        if dribbling.write_all(&[*byte]).await.is_err() {
            cut_off_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A closed connection shows as a read of 0 (or an error) without blocking.
        let mut probe = [0u8; 256];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), dribbling.read(&mut probe)).await {
            assert!(
                !String::from_utf8_lossy(&probe[..n]).starts_with("HTTP/1.1 200"),
                "served"
            );
            cut_off_after = Some(started.elapsed());
            break;
        }
    }
    let cut_off_after = cut_off_after.expect("the dribbling client was never cut off");
    assert!(
        cut_off_after < Duration::from_secs(4),
        "cut off after {cut_off_after:?} (header_read_timeout 1 s; the head took {} s to send)",
        head.len() / 10
    );
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(closed, "a connection that sends nothing is closed too");
    // The server still serves everyone else.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

/// Idle keep-alive connections are closed at `header_read_timeout` (counted from the last
/// response), while one in use keeps being served.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let app = TestApp::with_settings(&[("OUTGROW_HEADER_READ_TIMEOUT", "1s")]).await;
    let mut stream = TcpStream::connect(&app.address).await.expect("connect");
    for _ in 0..3 {
        stream
            .write_all(
                b"GET /healthz HTTP/1.1
host: x

",
            )
            .await
            .expect("write");
        let mut buffer = [0u8; 4096];
        let n = stream.read(&mut buffer).await.expect("read");
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(closed, "the idle connection stayed open");
}

/// `max_connections`: past the cap a new connection is not served until one closes (it waits
/// in the listen backlog rather than being refused).
#[tokio::test]
async fn connections_past_max_connections_wait_until_one_closes() {
    let app = TestApp::with_settings(&[
        ("OUTGROW_MAX_CONNECTIONS", "2"),
        ("OUTGROW_HEADER_READ_TIMEOUT", "30s"),
    ])
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&app.address).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut buffer = [0u8; 4096];
        let n = stream.read(&mut buffer).await.expect("read");
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
        open.push(stream);
    }
    // The kernel completes the handshake (backlog), but the server does not take it yet.
    let mut third = TcpStream::connect(&app.address).await.expect("connect");
    third.write_all(request).await.expect("write");
    let mut buffer = [0u8; 4096];
    let early = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "the third connection was served while two were open"
    );
    drop(open.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buffer))
        .await
        .expect("served once a slot freed")
        .expect("read");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn slow_requests_are_logged_as_warnings() {
    let app = TestApp::with_settings(&[("OUTGROW_SLOW_REQUEST_THRESHOLD", "1ms")]).await;

    // Registration hashes a password (tens of milliseconds): always over 1 ms.
    app.register("ann@example.org", PASSWORD, "Ann").await;

    let warning = app.wait_for_log(|event| event["message"] == "slow request").await;
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["spans"][0]["route"], "/api/v1/auth/register");
    assert!(warning["elapsed_ms"].as_f64().expect("elapsed") >= 1.0);
    assert!(
        app.metrics()
            .await
            .contains("http_slow_requests_total{method=\"POST\",route=\"/api/v1/auth/register\"}")
    );
}

#[tokio::test]
async fn the_auth_policy_limits_each_address_with_standard_headers() {
    let app = TestApp::with_settings(&[("OUTGROW_RATE_LIMIT_AUTH", "3/1m")]).await;

    let mut last = None;
    for attempt in 1..=4 {
        let response = app.login("nobody@example.org", "wrong password").await;
        assert_eq!(
            header(&response, "ratelimit-policy").as_deref(),
            Some("\"auth\";q=3;w=60")
        );
        if attempt <= 3 {
            assert_eq!(response.status(), 401, "attempt {attempt}");
            let remaining = header(&response, "ratelimit").expect("RateLimit");
            assert!(
                remaining.starts_with(&format!("\"auth\";r={};t=", 3 - attempt)),
                "{remaining}"
            );
        }
        last = Some(response);
    }

    let refused = last.expect("fourth");
    let retry_after: u64 = header(&refused, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(
        header(&refused, "ratelimit")
            .as_deref()
            .map(|v| v.starts_with("\"auth\";r=0;")),
        Some(true)
    );
    let problem = assert_problem(refused, 429).await;
    assert_eq!(problem["type"], "/problems/rate-limited");
    assert!(
        app.metrics()
            .await
            .contains("rate_limit_rejections_total{policy=\"auth\"} 1")
    );
}

#[tokio::test]
async fn the_default_policy_limits_each_signed_in_user_separately() {
    let app = TestApp::with_settings(&[("OUTGROW_RATE_LIMIT_DEFAULT", "5/1m")]).await;
    let ann = app.signed_in("ann@example.org").await;
    let bob = app.signed_in("bob@example.org").await;

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.get_status_with_token("/api/v1/me", &ann.access_token).await);
    }

    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    assert_eq!(
        app.get_status_with_token("/api/v1/me", &bob.access_token).await,
        200,
        "bob has his own budget"
    );
    let probe = app.get("/healthz").await;
    assert_eq!(probe.status(), 200, "probes are never limited");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let app = TestApp::spawn().await;
    assert_problem(app.get("/nope").await, 404).await;
    let wrong = app
        .client
        .delete(app.url("/api/v1/auth/login"))
        .send()
        .await
        .expect("delete");
    assert!(header(&wrong, "allow").is_some_and(|allow| allow.contains("POST")));
    let problem: Value = assert_problem(wrong, 405).await;
    assert_eq!(problem["type"], "/problems/method-not-allowed");
}
