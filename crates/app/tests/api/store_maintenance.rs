//! `store.maintenance`, the recurring upkeep of the store: event partitions for the coming
//! days (PostgreSQL shards) and idempotency keys past `idempotency_key_ttl`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// Waits (at most `within`) for a "store maintained" log line after the first `seen` lines
/// that satisfies `done`; returns it.
async fn maintained_after(
    app: &TestApp,
    seen: usize,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    poll_until(
        "a matching store maintenance",
        within,
        Duration::from_millis(50),
        async || {
            app.logs()[seen..]
                .iter()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|event| event["message"] == "store maintained" && done(event))
                .ok_or_else(|| "none logged".to_owned())
        },
    )
    .await
}

#[tokio::test]
async fn store_maintenance_deletes_expired_idempotency_keys_and_creates_future_partitions() {
    let app = TestApp::with_settings(&[
        ("OUTGROW_STORE_MAINTENANCE_SCHEDULE", "*/1 * * * * *"),
        ("OUTGROW_IDEMPOTENCY_KEY_TTL", "4s"),
        ("OUTGROW_JOB_POLL_INTERVAL", "100ms"),
    ])
    .await;
    let (id, user) = product_and_buyer(&app, "Mug", 1000, 10).await;
    let items = json!([{"product_id": id, "quantity": 1}]);
    assert_eq!(order(&app, &user, items, Some("k-expiring")).await.status(), 201);
    let placed = Instant::now();
    assert_eq!(count_rows(&app, "idempotency_keys", "").await, 1);

    // A run while the key is younger than its TTL keeps it…
    let seen = app.logs().len();
    maintained_after(&app, seen, Duration::from_secs(10), |_| true).await;
    if placed.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            count_rows(&app, "idempotency_keys", "").await,
            1,
            "kept while fresh"
        );
    }
    // …and one after it deletes it.
    maintained_after(&app, seen, Duration::from_secs(20), |event| {
        event["idempotency_keys_deleted"].as_u64() >= Some(1)
    })
    .await;
    assert!(placed.elapsed() >= Duration::from_secs(4), "not before its TTL");
    assert_eq!(count_rows(&app, "idempotency_keys", "").await, 0);

    if scaled() {
        // Every shard has today's partition and the next six days'; a missing one (dropped
        // here, empty) is created by the next run.
        let today = chrono::Utc::now().date_naive();
        let partition =
            |offset: u64| format!("events_{}", (today + chrono::Days::new(offset)).format("%Y%m%d"));
        let last = partition(6);
        let seen = app.logs().len();
        let dropped = execute_on_shards(&app, &format!("DROP TABLE {last}"), "").await;
        assert_eq!(dropped, 0, "DDL reports no rows");
        maintained_after(&app, seen, Duration::from_secs(10), |event| {
            event["partitions_created"].as_u64() >= Some(2)
        })
        .await;
        for offset in 0..7 {
            let name = partition(offset);
            let present = sum_over_shards(
                &app,
                &format!("SELECT count(*) FROM pg_class WHERE relname = '{name}'"),
            )
            .await;
            assert_eq!(present, 2, "{name} on both shards");
        }
    }
}
