//! The operations dashboard (`/admin/dashboard`), through the real binary: who may see it, the
//! page without JavaScript, the snapshot's JSON, the live stream (its numbers move under load)
//! and a stream that does not hold up a shutdown.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::helpers::{PASSWORD, TestApp, unique_email};

/// The series' ids (`data-metric`, JSON fields) and headings, as the browser tests name them.
const SERIES: [(&str, &str); 9] = [
    ("request_rate", "Request rate"),
    ("p95_latency", "p95 latency"),
    ("error_rate", "Error rate"),
    ("cache_hit_rate", "Cache hit rate"),
    ("queue_depth", "Queue depth"),
    ("oldest_job_age", "Oldest job age"),
    ("replica_lag", "Replica lag"),
    ("pool_usage", "Pool usage"),
    ("rate_limit_refusals", "Rate-limit refusals"),
];

/// How long a test waits for one event (they come every second).
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// A server with an administrator signed in through the browser cookie; returns the cookie.
async fn app_with_admin() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let email = unique_email("operator");
    app.admin(&email).await;
    let (cookie, _) = app.cookie_login(&email, PASSWORD).await;
    (app, cookie)
}

/// Some ordinary traffic: catalog pages, which read the product cache.
async fn apply_load(app: &TestApp, requests: usize) {
    let pages = (0..requests).map(|_| app.get("/"));
    for response in futures::future::join_all(pages).await {
        assert_eq!(response.status(), 200);
    }
}

/// An open event stream, read event by event.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

/// What reading the stream gave.
#[derive(Debug)]
enum Next {
    /// One event's lines (keep-alive comments skipped).
    Event(String),
    /// The server ended the stream.
    Ended,
}

impl EventStream {
    async fn open(app: &TestApp, cookie: &str) -> Self {
        let response = app
            .get_with_header("/admin/dashboard/stream", "cookie", cookie)
            .await;
        assert_eq!(response.status(), 200);
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event or the stream's end, within `within` (the test fails otherwise).
    async fn next(&mut self, within: Duration) -> Next {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.lines().all(|line| line.starts_with(':') || line.is_empty()) {
                    continue;
                }
                return Next::Event(block);
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None) | Err(_)) => return Next::Ended,
                Err(_) => panic!("nothing from the stream within {within:?}"),
            }
        }
    }

    /// The next `snapshot` event's JSON.
    async fn snapshot(&mut self) -> Value {
        let Next::Event(block) = self.next(EVENT_WAIT).await else {
            panic!("the stream ended before an event");
        };
        assert!(block.lines().any(|line| line == "event: snapshot"), "{block}");
        let data = block
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .expect("a data line");
        serde_json::from_str(data).expect("json")
    }
}

/// Asserts that `snapshot` has every figure as a number (replica lag: or `null`, when the
/// database has no replicas).
fn assert_every_figure_is_a_number(snapshot: &Value) {
    for (id, _) in SERIES {
        let figure = &snapshot[id];
        assert!(
            figure.is_number() || (id == "replica_lag" && figure.is_null()),
            "{id} = {figure} in {snapshot}"
        );
    }
}

#[tokio::test]
async fn a_user_is_refused_the_dashboard_and_an_anonymous_visitor_is_sent_to_sign_in() {
    let app = TestApp::spawn().await;
    let email = unique_email("shopper");
    app.signed_in(&email).await;
    let (cookie, _) = app.cookie_login(&email, PASSWORD).await;

    for path in [
        "/admin/dashboard",
        "/admin/dashboard/snapshot",
        "/admin/dashboard/stream",
    ] {
        let as_user = app.get_with_header(path, "cookie", &cookie).await;
        assert_eq!(as_user.status(), 403, "{path} for a user");
        let anonymous = app.get(path).await;
        assert_eq!(anonymous.status(), 303, "{path} anonymously");
        let location = anonymous.headers()["location"].to_str().expect("location");
        assert!(location.starts_with("/login?next=/admin/dashboard"), "{location}");
    }
}

#[tokio::test]
async fn the_page_shows_every_series_with_its_heading_and_a_value_without_javascript() {
    let (app, cookie) = app_with_admin().await;
    apply_load(&app, 5).await;

    let response = app.get_with_header("/admin/dashboard", "cookie", &cookie).await;

    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("html");
    assert!(html.contains("<h1>Operations</h1>"), "{html}");
    assert!(html.contains(r#"data-page="dashboard""#));
    assert!(html.contains("css/vendor/uplot"), "uPlot's stylesheet is linked");
    assert!(html.contains("this instance's"), "says whose figures they are");
    assert!(html.contains("the shared database's"));
    assert!(
        !html.contains(" style="),
        "no inline styles (the CSP forbids them)"
    );
    assert_eq!(html.matches(r#"<section class="chart""#).count(), SERIES.len());
    for (id, heading) in SERIES {
        assert!(html.contains(&format!(">{heading}</h2>")), "heading {heading}");
        let marker = format!(r#"data-metric="{id}""#);
        let at = html.find(&marker).unwrap_or_else(|| panic!("no value for {id}"));
        let text = html[at..]
            .split_once('>')
            .and_then(|(_, rest)| rest.split_once('<'))
            .map(|(text, _)| text.trim())
            .unwrap_or_default();
        assert!(!text.is_empty(), "{id} shows a value");
        if id != "replica_lag" {
            assert!(
                text.starts_with(|c: char| c.is_ascii_digit()),
                "{id} shows a number: {text}"
            );
        }
    }
}

#[tokio::test]
async fn the_snapshot_has_every_figure_as_a_number_and_is_never_stored() {
    let (app, cookie) = app_with_admin().await;
    apply_load(&app, 5).await;

    let response = app
        .get_with_header("/admin/dashboard/snapshot", "cookie", &cookie)
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let snapshot: Value = response.json().await.expect("json");
    assert_every_figure_is_a_number(&snapshot);
    assert!(snapshot["request_rate"].as_f64() > Some(0.0), "{snapshot}");
    assert!(snapshot["own_request_rate"].is_number(), "{snapshot}");
    assert!(snapshot["window"].as_f64() > Some(0.0), "{snapshot}");
    assert!(snapshot["instance"].as_str().is_some_and(|text| !text.is_empty()));
}

#[tokio::test]
async fn the_stream_sends_snapshots_whose_numbers_move_when_load_is_applied() {
    let (app, cookie) = app_with_admin().await;
    let mut stream = EventStream::open(&app, &cookie).await;
    let headers = stream.response.headers();
    assert!(
        headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    assert_eq!(headers["x-accel-buffering"], "no", "nginx must not buffer it");
    assert_eq!(headers["cache-control"], "no-store");

    let first = stream.snapshot().await;
    apply_load(&app, 10).await;
    let second = stream.snapshot().await;

    for (id, _) in SERIES {
        // Before any load a ratio may have nothing to measure (no cache read yet): `null`.
        assert!(first[id].is_number() || first[id].is_null(), "{id} in {first}");
    }
    assert_every_figure_is_a_number(&second);
    assert!(
        second["request_rate"].as_f64() > Some(0.0),
        "the requests between the events show: {second}"
    );
    assert!(second["at"].as_i64() > first["at"].as_i64());
}

#[tokio::test]
async fn an_open_stream_ends_when_the_server_drains_so_sigterm_is_not_held_up() {
    // Draining lasts 2 s before the listener closes; in-flight requests then get 30 s (the
    // default), which a stream that ignored the shutdown would use up.
    let mut app = TestApp::with_settings(&[("OUTGROW_SHUTDOWN_DELAY", "2s")]).await;
    let email = unique_email("operator");
    app.admin(&email).await;
    let (cookie, _) = app.cookie_login(&email, PASSWORD).await;
    let mut stream = EventStream::open(&app, &cookie).await;
    stream.snapshot().await;
    let signalled = Instant::now();

    app.terminate();

    loop {
        if let Next::Ended = stream.next(Duration::from_secs(10)).await {
            break;
        }
    }
    assert!(
        !app.logs().iter().any(|line| line.contains("listener closed")),
        "the stream ended when draining began, before the listener closed"
    );
    let status = app.wait_for_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "the stream did not hold the shutdown up: {:?}",
        signalled.elapsed()
    );
    assert!(
        app.logs()
            .iter()
            .any(|line| line.contains("all requests finished")),
        "no request was abandoned at the deadline"
    );
}
