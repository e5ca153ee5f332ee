//! The end of a shutdown: the background tasks that `App::build` starts (shard-map refresher,
//! replica prober, cache invalidation listener, rate-limiter clean-up, metrics upkeep, view
//! flusher) are stopped and awaited before the database pools close.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, scaled};

#[tokio::test]
async fn sigterm_stops_and_awaits_every_background_task_before_the_pools_close() {
    let mut app = TestApp::with_settings(&[("OUTGROW_SHUTDOWN_DELAY", "0s")]).await;

    app.terminate();
    let status = app.wait_for_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}");
    app.wait_for_log(|event| event["message"] == "stopped").await;
    let events: Vec<Value> = app
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let position = |message: &str| events.iter().position(|event| event["message"] == message);
    let tasks = position("background tasks stopped").expect("the tasks' line is logged");
    let pools = position("database pools closed").expect("the pools' line is logged");
    assert!(
        tasks < pools,
        "the background tasks stopped before the pools closed"
    );
    assert_eq!(
        position("background tasks did not stop in time and were aborted"),
        None,
        "every task stopped at the signal"
    );
    let names = events[tasks]["names"].as_str().unwrap_or_default();
    let mut expected = vec![
        "shard map refresher",
        "rate limiter clean-up",
        "cache invalidation listener",
        "metrics upkeep",
        "view count flusher",
    ];
    if scaled() {
        expected.push("replica prober");
    }
    for task in expected {
        assert!(names.contains(task), "{task} was not awaited: {names}");
    }
}
