//! Waiting for a condition instead of sleeping: a log line, a metric, an export, anything.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::TestApp;

impl TestApp {
    /// Waits (bounded) until a log line satisfies `predicate`.
    pub async fn wait_for_log(&self, predicate: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let found = self
                .logs()
                .iter()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|event| predicate(event));
            if let Some(event) = found {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no matching log line; logs:\n{}", self.logs().join("\n"));
    }
    /// Waits until the metric `series` satisfies `done`, at most `within`.
    pub async fn wait_for_metric(&self, series: &str, within: Duration, done: impl Fn(Option<f64>) -> bool) {
        let started = std::time::Instant::now();
        loop {
            let value = self.metric(series).await;
            if done(value) {
                return;
            }
            if started.elapsed() >= within {
                // Request lines drown the rest: show what the server said besides them.
                let logs: Vec<String> = self
                    .logs()
                    .into_iter()
                    .filter(|line| !line.contains("\"request completed\""))
                    .collect();
                let tail = logs[logs.len().saturating_sub(40)..].join("\n");
                panic!("{series} is still {value:?} after {within:?}; last log lines:\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of the metric `series` (name and labels) now, if it has one.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics().await, series)
    }

    /// The Prometheus text from `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Polls the data export at `path` as the bearer of `token` until it is ready (at most
    /// 15 s); returns its status, with the `download_url`.
    pub async fn wait_for_export(&self, path: &str, token: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let status = self.get_json_with_token(path, token).await;
            if status["status"] == "ready" {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "never ready: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The value of the first metric line starting with `series` (name and labels), if any.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Waits until `done` holds, checking every 50 ms, at most `within`; panics naming `what`.
pub async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every `every` until it answers `Ok`, at most `within`; returns what it found.
/// `check` answers `Err` with the state it saw, which the panic shows when time runs out.
pub async fn poll_until<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match check().await {
            Ok(found) => return found,
            Err(seen) => assert!(
                started.elapsed() < within,
                "{what} did not happen within {within:?}: {seen}"
            ),
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until `done` holds, checking every 100 ms, at most `within`; panics naming `what`.
pub async fn eventually(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let every = Duration::from_millis(100);
    poll_until(what, within, every, async || {
        if done().await {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
}
