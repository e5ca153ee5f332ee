//! Analytics events: group commit into batches, refusal of bad batches as a whole,
//! back-pressure when the queue is full, durability across kill -9 and SIGTERM, and the
//! hourly roll-up. Runs on both backends; on the scaled one events live on two shards.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn a_hundred_thousand_events_in_batches_are_all_stored_and_rolled_up() {
    let app = TestApp::with_settings(&[("OUTGROW_ANALYTICS_ROLLUP_SCHEDULE", "*/1 * * * * *")]).await;
    let users = join_all((0..4).map(|index| app.signed_in_quick(index))).await;
    let batch = events(500, "page.viewed");
    let started = std::time::Instant::now();
    // 200 requests of 500, 16 at a time.
    let mut acknowledged = 0;
    for round in 0..(200 / 16 + 1) {
        let requests = (0..16)
            .map(|slot| round * 16 + slot)
            .filter(|index| *index < 200)
            .map(|index| post_events(&app, &users[index % users.len()], &batch));
        for response in join_all(requests).await {
            assert_eq!(response.status(), 201);
            acknowledged += response.json::<Value>().await.expect("json")["stored"]
                .as_i64()
                .expect("stored");
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(acknowledged, 100_000);
    assert_eq!(
        count_rows(&app, "events", "").await,
        100_000,
        "every acknowledged event is stored"
    );
    eprintln!(
        "100000 events in {:.1} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        100_000.0 / elapsed.as_secs_f64()
    );
    // Every event went through a batch (how requests coalesce into batches is
    // `requests_queued_while_a_batch_is_written_are_written_in_one_batch`).
    let metrics = app.metrics().await;
    assert_eq!(summed(&metrics, "events_batch_rows_sum"), 100_000.0);

    // The roll-up counts them, gathering across every shard.
    let admin = app.admin("admin@example.org").await;
    let mut total = 0;
    for _ in 0..100 {
        let report: Value = app
            .get_json_with_token("/api/v1/admin/analytics?hours=2", &admin.access_token)
            .await;
        total = report["events_per_hour"]
            .as_array()
            .expect("counts")
            .iter()
            .filter(|row| row["type"] == "page.viewed")
            .map(|row| row["count"].as_i64().unwrap_or(0))
            .sum::<i64>();
        if total == 100_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(total, 100_000);
    app.get_problem_with_token("/api/v1/admin/analytics", &users[0].access_token, 403)
        .await;
}

/// The sum of a metric's series over every label set (e.g. every shard).
fn summed(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A lock on the events table of every database that holds it, taken from outside the server:
/// its event writers block on it until [`EventWritesHeld::release`].
struct EventWritesHeld(Vec<DbConnection>);

impl EventWritesHeld {
    async fn take(app: &TestApp) -> Self {
        let mut connections = shard_connections(app).await;
        for connection in &mut connections {
            // SQLite: the write lock (the server's writer waits up to its 5 s busy timeout).
            connection
                .execute("BEGIN; LOCK TABLE events IN SHARE MODE", "BEGIN IMMEDIATE")
                .await;
        }
        Self(connections)
    }

    async fn release(self) {
        for mut connection in self.0 {
            connection.execute("ROLLBACK", "ROLLBACK").await;
        }
    }
}

#[tokio::test]
async fn requests_queued_while_a_batch_is_written_are_written_in_one_batch() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let batch = events(500, "page.viewed");
    let held = EventWritesHeld::take(&app).await;

    // 20 requests of 500 events: the writer takes what is queued and blocks on the lock; the
    // rest queue behind it until it is released.
    let requests = join_all((0..20).map(|_| post_events(&app, &user, &batch)));
    let release = async {
        app.wait_for_metric("events_queued", Duration::from_secs(3), |queued| {
            queued == Some(10_000.0)
        })
        .await;
        held.release().await;
    };
    let (responses, ()) = tokio::join!(requests, release);
    for response in responses {
        assert_eq!(response.status(), 201);
    }
    assert_eq!(count_rows(&app, "events", "").await, 10_000);

    // Group commit: the first batch, then the 19 queued requests (9,500 events) in batches
    // of up to events_batch_max (5,000 events: 10 requests): 3 writes at most, not 20.
    let metrics = app.metrics().await;
    let batches = summed(&metrics, "events_batch_rows_count");
    assert!(
        (1.0..=3.0).contains(&batches),
        "{batches} batches for 20 requests queued together"
    );
    assert_eq!(summed(&metrics, "events_batch_rows_sum"), 10_000.0);
}

#[tokio::test]
async fn bad_event_batches_are_refused_whole() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let now = chrono::Utc::now();
    let big = "x".repeat(3000);
    for bad in [
        json!({"events": []}),
        events(501, "page.viewed"),
        json!({"events": [{"type": "Page Viewed", "timestamp": now.to_rfc3339()}]}),
        json!({"events": [{"type": "", "timestamp": now.to_rfc3339()}]}),
        json!({"events": [{"type": "a", "timestamp": "yesterday"}]}),
        json!({"events": [{"type": "a", "timestamp": (now - chrono::Duration::days(30)).to_rfc3339()}]}),
        json!({"events": [{"type": "a", "timestamp": (now + chrono::Duration::days(1)).to_rfc3339()}]}),
        json!({"events": [{"type": "a", "timestamp": now.to_rfc3339(), "properties": [1, 2]}]}),
        json!({"events": [{"type": "a", "timestamp": now.to_rfc3339(), "properties": {"big": big}}]}),
        json!({"events": [{"type": "a", "timestamp": now.to_rfc3339(), "extra": 1}]}),
    ] {
        assert_problem(post_events(&app, &user, &bad).await, 400).await;
    }
    assert_eq!(count_rows(&app, "events", "").await, 0);
    assert_problem(app.post_json("/api/v1/events", &events(1, "a")).await, 401).await;
}

#[tokio::test]
async fn a_full_event_queue_answers_503_and_loses_nothing_it_acknowledged() {
    // Room for one request at a time: concurrent requests find the queue full.
    let app = TestApp::with_settings(&[("OUTGROW_EVENTS_QUEUE_CAPACITY", "500")]).await;
    let user = app.signed_in("ann@example.org").await;
    let batch = events(500, "product.viewed");
    let responses = join_all((0..30).map(|_| post_events(&app, &user, &batch))).await;
    let mut stored = 0;
    let mut refused = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => {
                stored += response.json::<Value>().await.expect("json")["stored"]
                    .as_i64()
                    .expect("n")
            }
            503 => {
                assert_header(&response, "retry-after", Some("1"));
                let problem = assert_problem(response, 503).await;
                assert!(
                    problem["detail"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("queue is full")
                );
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0, "the queue filled up");
    assert!(stored > 0);
    assert_eq!(
        count_rows(&app, "events", "").await,
        stored,
        "stored = acknowledged"
    );
    assert!(
        metric_value(
            &app.metrics().await,
            r#"events_rejected_total{reason="queue_full"}"#
        ) >= Some(500.0)
    );
}

/// Eight senders posting `batch` as `user` over and over until the connection fails or the
/// server answers 503 (it is draining); any other answer but 201 fails the sender. Returns the
/// senders and the count of acknowledged events.
fn send_in_a_loop(
    app: &TestApp,
    user: &SignedIn,
    batch: Value,
) -> (Vec<tokio::task::JoinHandle<()>>, Arc<AtomicI64>) {
    let acknowledged = Arc::new(AtomicI64::new(0));
    let size = batch["events"].as_array().map_or(0, Vec::len) as i64;
    let batch = Arc::new(batch);
    let senders = (0..8)
        .map(|_| {
            let (client, url, token) = (
                app.client.clone(),
                app.url("/api/v1/events"),
                user.access_token.clone(),
            );
            let (acknowledged, batch) = (acknowledged.clone(), batch.clone());
            tokio::spawn(async move {
                loop {
                    let Ok(response) = client.post(&url).bearer_auth(&token).json(&*batch).send().await
                    else {
                        return;
                    };
                    match response.status().as_u16() {
                        201 => {
                            acknowledged.fetch_add(size, Ordering::SeqCst);
                        }
                        503 => return,
                        other => panic!("unexpected status {other}"),
                    }
                }
            })
        })
        .collect();
    (senders, acknowledged)
}

#[tokio::test]
async fn acknowledged_events_survive_a_kill_9_mid_load() {
    let (mut app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let (senders, acknowledged) = send_in_a_loop(&app, &user, events(200, "cart.updated"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = nix::unistd::Pid::from_raw(app.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("SIGKILL");
    let _ = app.child.wait();
    for sender in senders {
        let _ = sender.await;
    }
    let acknowledged = acknowledged.load(Ordering::SeqCst);
    assert!(acknowledged > 0, "load was running");
    let stored = count_rows(&app, "events", "").await;
    assert!(
        stored >= acknowledged,
        "{stored} stored, {acknowledged} acknowledged before the kill"
    );
    // Whole batches only: a batch commits or not at all.
    assert_eq!(stored % 200, 0);
    // And the server comes back on the same data.
    let again = TestApp::builder().restart_of(&app).spawn().await;
    assert_eq!(
        again
            .get_status_with_token("/api/v1/me", &user.access_token)
            .await,
        200
    );
}

#[tokio::test]
async fn sigterm_writes_every_queued_event_before_the_pools_close() {
    let (mut app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let (senders, acknowledged) = send_in_a_loop(&app, &user, events(250, "search.performed"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    app.terminate();
    let status = app.wait_for_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "a clean exit: {status:?}");
    for sender in senders {
        sender.await.expect("no unexpected status");
    }
    let acknowledged = acknowledged.load(Ordering::SeqCst);
    assert!(acknowledged > 0);
    assert_eq!(
        count_rows(&app, "events", "").await,
        acknowledged,
        "stored = acknowledged"
    );
}
