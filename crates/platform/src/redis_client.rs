//! The shared Redis connection: namespaced keys, short timeouts and a circuit breaker.
//!
//! Every shared concern (cache tier, invalidation bus, rate limits, sessions, read-your-writes
//! markers) goes through one [`RedisClient`]. Its `ConnectionManager` reconnects by itself after
//! Redis restarts, so Outgrow never needs restarting. Requests must not hang on a dead Redis:
//! commands time out after `redis_timeout`, and after a failure the breaker fails further calls
//! at once for [`BREAKER_OPEN_FOR`], so callers fall back (to the database, to the local limiter)
//! at full speed instead of each waiting out a timeout.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{Client, aio::ConnectionManager, aio::ConnectionManagerConfig};

/// How long the breaker stays open after a failure before Redis is tried again.
pub const BREAKER_OPEN_FOR: Duration = Duration::from_millis(500);

/// A failed Redis call (including "the breaker is open").
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Redis answered with an error or the connection failed or timed out.
    #[error("redis: {0}")]
    Command(#[from] redis::RedisError),
    /// A recent failure opened the breaker; Redis was not tried.
    #[error("redis is unavailable (circuit open after a recent failure)")]
    CircuitOpen,
}

/// A cheap, clonable handle on Redis.
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    manager: ConnectionManager,
    prefix: String,
    timeout: Duration,
    started: Instant,
    /// Milliseconds after `started` until which the breaker is open (0 = closed).
    open_until_ms: AtomicU64,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// A client for `url` whose keys all start with `prefix`. Connects lazily: Outgrow starts
    /// even when Redis is down, and `ping` tells whether it is reachable.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, RedisError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager,
                prefix: prefix.to_owned(),
                timeout,
                started: Instant::now(),
                open_until_ms: AtomicU64::new(0),
            }),
        })
    }

    /// `prefix` + `key`: every key Outgrow writes is namespaced, so several deployments (or
    /// test runs) can share one Redis.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }

    /// The configured prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Runs one command or script invocation through the breaker.
    pub async fn run<T, F, Fut>(&self, operation: &'static str, call: F) -> Result<T, RedisError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let now_ms = self.inner.started.elapsed().as_millis() as u64;
        if now_ms < self.inner.open_until_ms.load(Ordering::Relaxed) {
            metrics::counter!("redis_errors_total", "operation" => operation, "kind" => "circuit_open")
                .increment(1);
            return Err(RedisError::CircuitOpen);
        }
        // One call is one round trip (a command, a pipeline or a script): counted per
        // operation, so the cost of a request path in round trips can be read off /metrics.
        crate::telemetry::count("redis_commands_total", &[("operation", operation)], 1);
        // The manager has its own response timeout; this outer one also bounds reconnects.
        let outcome = tokio::time::timeout(self.inner.timeout * 2, call(self.inner.manager.clone())).await;
        let result = match outcome {
            Ok(result) => result.map_err(RedisError::from),
            Err(_) => Err(RedisError::Command(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "redis call timed out",
            )))),
        };
        match &result {
            Ok(_) => self.inner.open_until_ms.store(0, Ordering::Relaxed),
            Err(error) => {
                let until = self.inner.started.elapsed() + BREAKER_OPEN_FOR;
                self.inner
                    .open_until_ms
                    .store(until.as_millis() as u64, Ordering::Relaxed);
                metrics::counter!("redis_errors_total", "operation" => operation, "kind" => "command")
                    .increment(1);
                tracing::warn!(operation, %error, "redis call failed; falling back");
            }
        }
        result
    }

    /// One `PING`, bypassing the breaker (for readiness and `outgrow check`).
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut connection = self.inner.manager.clone();
        let outcome = tokio::time::timeout(
            self.inner.timeout * 2,
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await;
        match outcome {
            Ok(result) => result.map(drop).map_err(RedisError::from),
            Err(_) => Err(RedisError::Command(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "redis ping timed out",
            )))),
        }
    }

    /// The server's `run_id`: a new one means Redis restarted (and every subscription made
    /// before is gone, even if its socket has not noticed yet).
    pub async fn run_id(&self) -> Result<String, RedisError> {
        let info: String = self
            .run("info", |mut connection| async move {
                redis::cmd("INFO")
                    .arg("server")
                    .query_async::<String>(&mut connection)
                    .await
            })
            .await?;
        Ok(info
            .lines()
            .find_map(|line| line.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned())
            .unwrap_or_default())
    }

    /// A dedicated subscriber connection (pub/sub needs its own).
    pub async fn subscriber(&self) -> Result<redis::aio::PubSub, RedisError> {
        match tokio::time::timeout(self.inner.timeout * 2, self.inner.client.get_async_pubsub()).await {
            Ok(result) => result.map_err(RedisError::from),
            Err(_) => Err(RedisError::Command(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "redis subscribe timed out",
            )))),
        }
    }
}
