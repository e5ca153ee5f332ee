//! The shared Redis connection: one server or a Redis Cluster, namespaced keys, short timeouts
//! and a circuit breaker.
//!
//! Every shared concern (cache tier, invalidation bus, rate limits, sessions, read-your-writes
//! markers) goes through one [`RedisClient`]. Callers see one connection type,
//! [`RedisConnection`], whatever Redis is behind it: a `ConnectionManager` on one server, or
//! the `redis` crate's cluster connection, which routes each command to the master of its key's
//! slot, follows `MOVED`/`ASK` redirections and reconnects to a restarted node by itself. Either
//! way Outgrow never needs restarting. Requests must not hang on a dead Redis: commands time out
//! after `redis_timeout`, and after a failure the breaker fails further calls at once for
//! [`BREAKER_OPEN_FOR`], so callers fall back (to the database, to the local limiter) at full
//! speed instead of each waiting out a timeout.
//!
//! On a cluster, every key of one script, pipeline or `MULTI` must hash to one slot: the keys
//! that travel together carry one `{…}` hash tag (the prefix, which may not hold braces, stays
//! outside it), and a pipeline that pairs a key's commands with `PUBLISH` is pinned to that
//! key's node with [`RedisConnection::at_key`] — the client would otherwise route `PUBLISH` by
//! its channel name and refuse the pipeline as cross-slot.

mod connection;
mod subscribe;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    Client, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClientBuilder, ClusterConfig},
    cluster_async::ClusterConnection,
};

pub use crate::redis_cluster::ClusterReport;
use connection::Target;
pub use connection::{RedisConnection, same_slot};
pub use subscribe::{NodeProbe, Subscription};

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
    backend: Backend,
    prefix: String,
    timeout: Duration,
    started: Instant,
    /// Milliseconds after `started` until which the breaker is open (0 = closed).
    open_until_ms: AtomicU64,
    /// The node the invalidation bus tries first (an index into the backend's nodes): the one
    /// it last subscribed on, so a failover moves on to the next node instead of back.
    subscriber_node: AtomicUsize,
}

enum Backend {
    Single {
        /// Boxed: a client with TLS support is far larger than the cluster variant.
        client: Box<Client>,
        manager: ConnectionManager,
    },
    Cluster {
        /// One client per configured seed node, for the connections the cluster client does
        /// not make: pub/sub and the per-node checks.
        seeds: Vec<Client>,
        connection: ClusterConnection,
    },
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("mode", &self.mode())
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// A client for the Redis server at `url` whose keys all start with `prefix`. Connects
    /// lazily: Outgrow starts even when Redis is down, and `ping` tells whether it is reachable.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, RedisError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self::with_backend(
            Backend::Single {
                client: Box::new(client),
                manager,
            },
            prefix,
            timeout,
        ))
    }

    /// A client for the Redis Cluster that `seeds` (a few of its nodes) belong to. Connects in
    /// the background: Outgrow starts even when the cluster is down, and the connection finds
    /// the nodes again when they come back.
    pub fn cluster(seeds: &[&str], prefix: &str, timeout: Duration) -> Result<Self, RedisError> {
        let clients = seeds
            .iter()
            .map(|url| Client::open(*url))
            .collect::<Result<Vec<_>, _>>()?;
        let cluster = ClusterClientBuilder::new(seeds.iter().copied())
            // Like the single-node manager: one retry, soon. The retries also serve the
            // redirections (`MOVED` after a failover or a slot move), hence the overall bound
            // of two timeouts, which `run` applies too.
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .overall_response_timeout(Some(timeout * 2))
            .build()?;
        let config = ClusterConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let connection = cluster.get_pending_async_connection_with_config(config);
        Ok(Self::with_backend(
            Backend::Cluster {
                seeds: clients,
                connection,
            },
            prefix,
            timeout,
        ))
    }

    /// The client the settings ask for: `redis_url` (one server), `redis_cluster_urls` (a
    /// cluster) or none (everything in-process).
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Option<Self>> {
        use anyhow::Context;
        use secrecy::ExposeSecret;
        let prefix = &settings.redis_key_prefix;
        if let Some(url) = &settings.redis_url {
            let client = Self::new(url.expose_secret(), prefix, settings.redis_timeout)
                .context("redis_url (OUTGROW_REDIS_URL)")?;
            return Ok(Some(client));
        }
        if settings.redis_cluster_urls.is_empty() {
            return Ok(None);
        }
        let seeds: Vec<&str> = settings
            .redis_cluster_urls
            .iter()
            .map(|url| url.expose_secret())
            .collect();
        let client = Self::cluster(&seeds, prefix, settings.redis_timeout)
            .context("redis_cluster_urls (OUTGROW_REDIS_CLUSTER_URLS)")?;
        Ok(Some(client))
    }

    fn with_backend(backend: Backend, prefix: &str, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                backend,
                prefix: prefix.to_owned(),
                timeout,
                started: Instant::now(),
                open_until_ms: AtomicU64::new(0),
                subscriber_node: AtomicUsize::new(0),
            }),
        }
    }

    /// `"single"` or `"cluster"`, for logs and `outgrow check`.
    pub fn mode(&self) -> &'static str {
        match self.inner.backend {
            Backend::Single { .. } => "single",
            Backend::Cluster { .. } => "cluster",
        }
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

    fn connection(&self) -> RedisConnection {
        let target = match &self.inner.backend {
            Backend::Single { manager, .. } => Target::Single(manager.clone()),
            Backend::Cluster { connection, .. } => Target::Cluster(connection.clone()),
        };
        RedisConnection::new(target)
    }

    /// Runs one command or script invocation through the breaker.
    pub async fn run<T, F, Fut>(&self, operation: &'static str, call: F) -> Result<T, RedisError>
    where
        F: FnOnce(RedisConnection) -> Fut,
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
        let result = self
            .bounded("redis call timed out", call(self.connection()))
            .await;
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

    /// One `PING`, bypassing the breaker (for readiness and `outgrow check`). On a cluster the
    /// client sends it to every master, and it succeeds only if all of them answer.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut connection = self.connection();
        let ping = redis::cmd("PING");
        let answered = ping.query_async::<Value>(&mut connection);
        self.bounded("redis ping timed out", answered).await.map(drop)
    }

    /// `call`, failed as `what` if it takes longer than two timeouts: the connection has its
    /// own response timeout, and this outer one also bounds reconnects.
    async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.inner.timeout * 2, call).await {
            Ok(result) => result.map_err(RedisError::from),
            Err(_) => Err(timed_out(what)),
        }
    }
}

fn timed_out(what: &'static str) -> RedisError {
    RedisError::Command(redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        what,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cluster_client_is_made_without_reaching_the_cluster() {
        let client = RedisClient::cluster(
            &["redis://127.0.0.1:1", "redis://127.0.0.1:2"],
            "t:",
            Duration::from_millis(50),
        )
        .expect("lazy");
        assert_eq!(client.mode(), "cluster");
        assert!(client.ping().await.is_err());
        assert!(client.subscribe("t:bus").await.is_err());
    }
}
