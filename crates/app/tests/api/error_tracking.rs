//! Error tracking (`OUTGROW_SENTRY_DSN`), end to end: the real binary reports to a local HTTP
//! receiver that records what the Sentry SDK sends (envelopes), exactly as sentry.io would
//! receive them. A 5xx answer arrives as an event tagged with the request id the client got,
//! the route template and the release — and nothing in what was sent holds the user's token,
//! password, e-mail address or the server's keys. Answers that are not server errors (4xx) are
//! not reported. (Panics inside a handler are reported with the same tags: see
//! `http::stack`'s tests, which can install a panicking route.)

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::Uri};
use serde_json::Value;

use crate::helpers::*;

/// What the receiver got: (path, body) of every request.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP server recording every request body sent to it (the envelopes), with its path.
struct Receiver {
    address: std::net::SocketAddr,
    received: Received,
}

impl Receiver {
    async fn start() -> Self {
        let received: Received = Arc::default();
        let record = |State(received): State<Received>, uri: Uri, body: Bytes| async move {
            let text = String::from_utf8_lossy(&body).into_owned();
            received.lock().expect("lock").push((uri.path().to_owned(), text));
            "{}"
        };
        let app = Router::new().fallback(record).with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, received }
    }

    /// A DSN for project 42 at this receiver.
    fn dsn(&self) -> String {
        format!("http://0123456789abcdef0123456789abcdef@{}/42", self.address)
    }

    /// Every event received so far: the JSON items of type `event` in every envelope.
    fn events(&self) -> Vec<Value> {
        let received = self.received.lock().expect("lock");
        let mut events = Vec::new();
        for (_, envelope) in received.iter() {
            let mut lines = envelope.lines();
            let _header = lines.next();
            while let Some(item_header) = lines.next() {
                let Ok(item) = serde_json::from_str::<Value>(item_header) else {
                    continue;
                };
                let payload = lines.next().unwrap_or_default();
                if item["type"] == "event" {
                    events.push(serde_json::from_str(payload).expect("event JSON"));
                }
            }
        }
        events
    }

    /// Everything received, as one text (to look for leaks).
    fn everything(&self) -> String {
        let received = self.received.lock().expect("lock");
        received
            .iter()
            .map(|(path, body)| format!("{path}\n{body}\n"))
            .collect()
    }

    async fn wait_for_event(&self, request_id: &str) -> Value {
        for _ in 0..100 {
            if let Some(event) = self
                .events()
                .into_iter()
                .find(|event| event["tags"]["request_id"] == request_id)
            {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no event for request {request_id}; received: {}",
            self.everything()
        );
    }
}

#[tokio::test]
async fn a_server_error_reaches_the_error_tracker_with_its_request_id_and_no_secret() {
    let receiver = Receiver::start().await;
    let dsn = receiver.dsn();
    let app = TestApp::with_settings(&[
        ("OUTGROW_SENTRY_DSN", dsn.as_str()),
        ("OUTGROW_SENTRY_ENVIRONMENT", "test"),
    ])
    .await;
    let started = app
        .wait_for_log(|event| event["message"] == "Outgrow listening")
        .await;
    assert!(started.to_string().contains("errors=sentry"), "{started}");
    let email = unique_email("tracked");
    let user = app.signed_in(&email).await;
    let missing = format!("/api/v1/products/{}", uuid::Uuid::now_v7());

    // A client error is not reported.
    let not_found = app.get_with_token(&missing, &user.access_token).await;
    assert_eq!(not_found.status(), 404);
    let not_found_id = header(&not_found, "x-request-id").expect("request id");

    // Break the catalog under the running server: the next uncached product read fails.
    primary_connection(&app)
        .await
        .execute(
            "ALTER TABLE products RENAME TO products_gone",
            "ALTER TABLE products RENAME TO products_gone",
        )
        .await;
    let other = format!("/api/v1/products/{}", uuid::Uuid::now_v7());
    let failed = app.get_with_token(&other, &user.access_token).await;
    assert_eq!(failed.status(), 500, "a read of a renamed table");
    let request_id = header(&failed, "x-request-id").expect("request id");

    let event = receiver.wait_for_event(&request_id).await;
    // `error` is the protocol's default level, which the SDK leaves out.
    assert!(event.get("level").is_none_or(|level| level == "error"), "{event}");
    assert_eq!(event["tags"]["route"], "/api/v1/products/{id}");
    assert_eq!(event["tags"]["method"], "GET");
    assert_eq!(event["tags"]["status"], "500");
    assert_eq!(event["environment"], "test");
    let release = event["release"].as_str().expect("release");
    assert!(release.starts_with("outgrow@"), "{release}");
    assert!(event.get("request").is_none(), "no request data: {event}");
    assert!(event.get("user").is_none(), "no user: {event}");
    let message = event["message"].to_string() + &event["logentry"].to_string();
    assert!(
        message.contains("500") && message.contains("/api/v1/products/{id}"),
        "{event}"
    );

    let everything = receiver.everything();
    assert!(
        everything.contains("/api/42/envelope/"),
        "the SDK's envelope endpoint"
    );
    for secret in [
        user.access_token.as_str(),
        user.refresh_token.as_str(),
        PASSWORD,
        email.as_str(),
        TEST_JWT_SECRET,
        other.as_str(),
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} was sent to the error tracker"
        );
    }
    assert!(
        receiver
            .events()
            .iter()
            .all(|event| event["tags"]["request_id"] != not_found_id.as_str()),
        "a 404 was reported"
    );
}

#[tokio::test]
async fn without_a_dsn_no_client_starts() {
    let app = TestApp::spawn().await;
    let started = app
        .wait_for_log(|event| event["message"] == "Outgrow listening")
        .await;
    assert!(started.to_string().contains("errors=off"), "{started}");
}
