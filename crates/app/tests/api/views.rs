//! Product views, written behind: counted in memory on every product read, added to the
//! database in batches every `view_count_flush_interval`, all of them at a graceful stop, and
//! at most one interval's worth lost to a crash.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// A product created by `admin`; returns its id.
async fn a_product(app: &TestApp, admin: &SignedIn) -> String {
    let response = app
        .post_json_with_token(
            "/api/v1/products",
            &admin.access_token,
            &json!({"name": "Oak chair", "price_minor": 4900, "currency": "EUR", "stock": 5}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let product: Value = response.json().await.expect("json");
    product["id"].as_str().expect("id").to_owned()
}

/// Reads the product `times` times, every other read conditional (304 counts as a view too).
async fn view(app: &TestApp, product: &str, times: usize) {
    let url = app.url(&format!("/api/v1/products/{product}"));
    let first = app.client.get(&url).send().await.expect("view");
    assert_eq!(first.status(), 200);
    let etag = header(&first, "etag").expect("ETag");
    for read in 1..times {
        let mut request = app.client.get(&url);
        if read % 2 == 1 {
            request = request.header("if-none-match", &etag);
        }
        let status = request.send().await.expect("view").status().as_u16();
        assert!(status == 200 || status == 304, "{status}");
    }
}

/// The product's stored views, from the admin report (0 when it has none yet).
async fn stored_views(app: &TestApp, admin: &SignedIn, product: &str) -> i64 {
    let report: Value = app
        .get_json_with_token("/api/v1/admin/analytics?top=10", &admin.access_token)
        .await;
    report["most_viewed"]
        .as_array()
        .expect("most_viewed")
        .iter()
        .find(|viewed| viewed["product_id"] == product)
        .map_or(0, |viewed| viewed["views"].as_i64().expect("views"))
}

#[tokio::test]
async fn views_are_written_behind_in_batches_within_the_flush_interval() {
    let app = TestApp::with_settings(&[("OUTGROW_VIEW_COUNT_FLUSH_INTERVAL", "200ms")]).await;
    let admin = app.admin("admin@example.org").await;
    let product = a_product(&app, &admin).await;

    view(&app, &product, 30).await;

    let (within, every) = (Duration::from_secs(5), Duration::from_millis(50));
    poll_until(
        "the views to be written",
        within,
        every,
        async || match stored_views(&app, &admin, &product).await {
            30.. => Ok(()),
            stored => Err(format!("{stored} stored")),
        },
    )
    .await;
    assert_eq!(stored_views(&app, &admin, &product).await, 30);
    let metrics = app.metrics().await;
    assert_eq!(metric_value(&metrics, "product_views_flushed_total"), Some(30.0));
    // Thirty reads, a handful of writes.
    let flushes = metric_value(&metrics, "product_views_flush_seconds_count").expect("flushes");
    assert!(flushes <= 10.0, "{flushes} flushes for 30 views");
}

#[tokio::test]
async fn a_graceful_stop_loses_no_view_and_a_crash_at_most_those_since_the_last_flush() {
    // A long interval: nothing is written while the test runs but at shutdown.
    let rare = [("OUTGROW_VIEW_COUNT_FLUSH_INTERVAL", "1h")];
    // The first instance owns the data directory: it stays in scope to the end.
    let mut first = TestApp::with_settings(&rare).await;
    let admin = first.admin("admin@example.org").await;
    let product = a_product(&first, &admin).await;

    // SIGTERM: the tally is written before the pools close.
    view(&first, &product, 10).await;
    first.terminate();
    assert!(first.child.wait().expect("exit").success());
    let mut second = first.restart_with(&rare).await;
    assert_eq!(stored_views(&second, &admin, &product).await, 10);

    // kill -9 before any flush: those views are the loss the interval bounds.
    view(&second, &product, 7).await;
    second.child.kill().expect("kill -9");
    second.child.wait().expect("exit");
    let frequent = [("OUTGROW_VIEW_COUNT_FLUSH_INTERVAL", "200ms")];
    let mut third = first.restart_with(&frequent).await;
    assert_eq!(stored_views(&third, &admin, &product).await, 10);

    // kill -9 after a flush: what was flushed stays.
    view(&third, &product, 5).await;
    third
        .wait_for_metric("product_views_flushed_total", Duration::from_secs(5), |value| {
            value == Some(5.0)
        })
        .await;
    third.child.kill().expect("kill -9");
    third.child.wait().expect("exit");
    let fourth = first.restart_with(&frequent).await;
    assert_eq!(stored_views(&fourth, &admin, &product).await, 15);
}
