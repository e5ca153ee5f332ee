//! Health, readiness, metrics, the OpenAPI document and docs page, and graceful shutdown.

use std::{process::Command, time::Duration};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

#[tokio::test]
async fn liveness_and_readiness_answer_200_when_healthy() {
    let app = TestApp::spawn().await;
    let health: Value = app.get_json("/healthz").await;
    let ready = app.get("/readyz").await;
    assert_eq!(health["status"], "ok");
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn the_first_start_creates_the_data_dir_database_and_key() {
    let app = TestApp::spawn().await;
    // Tests configure OUTGROW_JWT_KEYS, so no key is generated (see below for generation).
    assert!(!app.data_dir.join("jwt-keys").exists());
    let started = app
        .wait_for_log(|event| event["message"] == "Outgrow listening")
        .await;
    let backends = started["backends"].as_str().expect("backends");
    if scaled() {
        for part in [
            "postgres (primary",
            "replicas [",
            "redis L2",
            "rate_limiter=redis",
            "sessions=redis",
            "objects=s3 (bucket",
        ] {
            assert!(backends.contains(part), "{part} missing in {backends}");
        }
    } else {
        assert!(app.data_dir.join("outgrow.sqlite3").exists());
        assert!(
            backends.contains("sqlite") && backends.contains("cache=in-process"),
            "{backends}"
        );
    }
}

#[tokio::test]
async fn metrics_use_matched_routes_real_histograms_and_pass_promtool() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    for _ in 0..3 {
        app.get_with_token(&format!("/api/v1/users/{}", user.id), &user.access_token)
            .await;
    }
    app.get("/no/such/path/12345").await;
    // The store's series too: an event batch (group commit histograms and counters) and an
    // order refused for an unknown product.
    let event = serde_json::json!({"events": [{"type": "page.viewed", "timestamp": chrono::Utc::now().to_rfc3339()}]});
    let stored = app
        .post_json_with_token("/api/v1/events", &user.access_token, &event)
        .await;
    assert_eq!(stored.status(), 201);
    app.post_json_with_token(
        "/api/v1/orders",
        &user.access_token,
        &serde_json::json!({"items": [{"product_id": uuid::Uuid::now_v7(), "quantity": 1}]}),
    )
    .await;

    let metrics = app.metrics().await;
    assert!(
        metrics.contains("# TYPE events_batch_rows histogram"),
        "{metrics}"
    );
    assert!(metrics.contains("orders_refused_total"), "{metrics}");

    assert!(
        metrics.contains("# TYPE http_request_duration_seconds histogram"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/api/v1/users/{id}",status="200",le="0.005"}"#), "{metrics}");
    assert!(metrics.contains(r#"route="unmatched""#));
    assert!(!metrics.contains(&user.id), "raw paths must never become labels");
    assert!(!metrics.contains("12345"));
    assert!(
        metrics.contains(r#"cache_requests_total{cache="users",result="hit"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("password_hash_duration_seconds_bucket"));
    // The shared parts' latency: every cache read's local tier, every rate-limit check, and
    // (scaled) each routed read by its pool and the shared tier's reads.
    assert!(
        metrics.contains(r#"cache_read_duration_seconds_bucket{cache="users",tier="local",le="0.001"}"#),
        "{metrics}"
    );
    let backend = if scaled() { "redis" } else { "local" };
    assert!(
        metrics.contains(&format!(
            r#"rate_limit_check_duration_seconds_count{{backend="{backend}"}}"#
        )),
        "{metrics}"
    );
    if scaled() {
        assert!(
            metrics.contains(r#"cache_read_duration_seconds_count{cache="users",tier="shared"}"#),
            "{metrics}"
        );
        assert!(
            metrics.contains("db_read_duration_seconds_count{pool="),
            "{metrics}"
        );
    }

    let promtool = Command::new("promtool").arg("--version").output();
    assert!(
        promtool.is_ok_and(|output| output.status.success()),
        "promtool is required (Debian package `prometheus`; scripts/test installs it)"
    );
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    std::io::Write::write_all(&mut check.stdin.take().expect("stdin"), metrics.as_bytes()).expect("write");
    let output = check.wait_with_output().expect("promtool output");
    assert_succeeded(&output, "promtool check metrics");
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let app = TestApp::with_settings(&[("OUTGROW_METRICS_ENABLED", "false")]).await;
    assert_problem(app.get("/metrics").await, 404).await;
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_the_auth_schemes() {
    let app = TestApp::spawn().await;
    let spec: Value = app.get_json("/api/openapi.json").await;
    assert!(spec["openapi"].as_str().expect("version").starts_with("3."));
    let paths = spec["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/logout-all",
        "/api/v1/me",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the spec");
    }
    assert!(paths["/api/v1/me"].get("patch").is_some());
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["cookie"]["in"], "cookie");
    assert!(spec["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn the_docs_page_and_its_assets_are_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let page = app.get("/api/docs/").await;
    assert_eq!(page.status(), 200);
    let csp = header(&page, "content-security-policy").expect("CSP");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"] {
        let response = app.get(&format!("/api/docs/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.bytes().await.expect("body").len() > 100, "{asset}");
    }
    let initializer = app
        .get("/api/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .expect("js");
    assert!(initializer.contains("/api/openapi.json"));
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_turns_readiness_off_first() {
    let mut app = TestApp::with_settings(&[
        ("OUTGROW_SHUTDOWN_DELAY", "2s"),
        ("OUTGROW_SHUTDOWN_TIMEOUT", "10s"),
    ])
    .await;
    let body = br#"{"email":"late@example.org","password":"correct horse battery","name":"Late"}"#;
    let mut in_flight = TcpStream::connect(&app.address).await.expect("connect");
    let head = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.expect("write head");
    in_flight.write_all(&body[..10]).await.expect("write part");
    // A load balancer's pooled keep-alive connection, used once before the signal.
    let mut pooled = TcpStream::connect(&app.address).await.expect("connect");
    let probe = "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    pooled.write_all(probe.as_bytes()).await.expect("write probe");
    let mut first = vec![0u8; 4096];
    let n = pooled.read(&mut first).await.expect("read probe");
    let first = String::from_utf8_lossy(&first[..n]).to_lowercase();
    assert!(first.starts_with("http/1.1 200"), "{first}");
    assert!(
        !first.contains("connection: close"),
        "kept alive before the signal: {first}"
    );
    // Wait until the request is being handled.
    app.wait_for_log(|_| true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.terminate();
    app.wait_for_log(|event| {
        event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("draining"))
    })
    .await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    // While draining, requests are still served, but every connection is closed after its
    // response, so that no pooled connection is left to be cut under a request later.
    pooled
        .write_all(probe.as_bytes())
        .await
        .expect("write while draining");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), pooled.read_to_end(&mut answer))
        .await
        .expect("the server closes the pooled connection after answering")
        .expect("read while draining");
    let answer = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    in_flight.write_all(&body[10..]).await.expect("write rest");
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), in_flight.read(&mut response))
        .await
        .expect("answer")
        .expect("read");
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(
        text.starts_with("HTTP/1.1 202"),
        "the in-flight request must complete: {text}"
    );
    assert!(text.to_lowercase().contains("connection: close"), "{text}");

    let status = app.wait_for_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}");
    app.wait_for_log(|event| event["message"] == "all requests finished")
        .await;
    assert!(
        TcpStream::connect(&app.address).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn the_docs_page_renders_every_operation_in_a_real_browser_offline() {
    let app = TestApp::spawn().await;
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("Chromium is required (Debian package `chromium`; scripts/test installs it)");
    let profile = tempfile::tempdir().expect("profile dir");
    let url = app.url("/api/docs/");

    // The machine has no route to the internet, so a page that needed a CDN would render
    // nothing; the flags keep Chromium itself from trying to reach Google's services.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=15000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .output()
            .expect("run chromium")
    })
    .await
    .expect("join");

    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("Outgrow API"),
        "the spec's title was not rendered:\n{dom:.2000}"
    );
    for path in ["/api/v1/auth/login", "/api/v1/users/{id}", "/readyz"] {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "{path} not rendered"
        );
    }
}

#[tokio::test]
async fn requests_still_running_at_the_shutdown_deadline_are_abandoned_and_the_process_exits() {
    let mut app = TestApp::with_settings(&[
        ("OUTGROW_SHUTDOWN_TIMEOUT", "1s"),
        ("OUTGROW_REQUEST_TIMEOUT", "60s"),
    ])
    .await;
    let mut stalled = TcpStream::connect(&app.address).await.expect("connect");
    stalled
        .write_all(b"POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n{")
        .await
        .expect("write");
    app.wait_for_log(|_| true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = std::time::Instant::now();
    app.terminate();
    let status = app.wait_for_exit(Duration::from_secs(10)).await;
    assert!(status.success());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exited after {:?}",
        signalled.elapsed()
    );
    app.wait_for_log(|event| {
        event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutdown_timeout reached"))
    })
    .await;
}

#[tokio::test]
async fn without_configured_keys_one_is_generated_privately_and_kept_across_restarts() {
    let dir = tempfile::tempdir().expect("dir");
    let data_dir = dir.path().join("data");
    if scaled() {
        // Instances must share their keys: a PostgreSQL deployment without them is refused.
        let output = base_command(&data_dir)
            .envs(isolated_scaled_backend().await)
            .env_remove("OUTGROW_JWT_KEYS")
            .arg("serve")
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("OUTGROW_JWT_KEYS"));
        return;
    }
    let first = TestApp::builder()
        .data_dir(&data_dir)
        .settings(&[("OUTGROW_JWT_KEYS", "")])
        .spawn()
        .await;
    let user = first.signed_in("ann@example.org").await;
    let key_file = data_dir.join("jwt-keys");
    let spec = std::fs::read_to_string(&key_file).expect("generated key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let secret = spec.split(':').nth(1).expect("secret").to_owned();
    assert!(
        !first.logs().join("\n").contains(&secret),
        "the secret is never logged"
    );
    drop(first);

    // A restart on the same data dir keeps the key, so earlier tokens stay valid.
    let second = TestApp::builder()
        .data_dir(&data_dir)
        .settings(&[("OUTGROW_JWT_KEYS", "")])
        .spawn()
        .await;
    assert_eq!(
        std::fs::read_to_string(&key_file).expect("file"),
        spec,
        "kept, not regenerated"
    );
    assert_eq!(
        second
            .get_status_with_token("/api/v1/me", &user.access_token)
            .await,
        200
    );
}

/// OWASP API8: `/metrics` answers only clients in `metrics_allowed_networks`, judged by the real
/// client address (a public client behind a trusted proxy is refused too), with the 404 of
/// disabled metrics.
#[tokio::test]
async fn metrics_answer_only_the_allowed_networks() {
    let app = TestApp::with_settings(&[
        ("OUTGROW_METRICS_ALLOWED_NETWORKS", "10.9.0.0/16"),
        ("OUTGROW_TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    // The test client is 127.0.0.1: outside the allowed network.
    assert_problem(app.get("/metrics").await, 404).await;
    // Through the (trusted) proxy on its behalf: an allowed client, then a public one.
    let allowed = app
        .get_with_header("/metrics", "x-forwarded-for", "10.9.1.2")
        .await;
    assert_eq!(allowed.status(), 200);
    assert!(allowed.text().await.expect("text").contains("# TYPE"));
    let public = app
        .get_with_header("/metrics", "x-forwarded-for", "203.0.113.7")
        .await;
    assert_problem(public, 404).await;

    // The defaults answer loopback (how every other test reads /metrics).
    let defaults = TestApp::spawn().await;
    assert_eq!(defaults.get("/metrics").await.status(), 200);
}
