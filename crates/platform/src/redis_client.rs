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

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    Client, Cmd, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::{ClusterClientBuilder, ClusterConfig},
    cluster_async::ClusterConnection,
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr},
};

pub use crate::redis_cluster::ClusterReport;

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
        client: Client,
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

/// A connection to the shared Redis, whatever it is: commands, pipelines and scripts run on it
/// as on any `redis` connection. Cheap to clone.
#[derive(Clone)]
pub struct RedisConnection {
    target: Target,
    /// Cluster only: every command and pipeline goes to this slot's master.
    pinned: Option<Route>,
}

#[derive(Clone)]
enum Target {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// This connection with everything sent to the node serving `key`'s slot (on one server,
    /// unchanged). For a pipeline that pairs `key`'s commands with `PUBLISH` (which any node
    /// accepts and broadcasts to the whole cluster, but which the cluster client would route by
    /// its channel name), and for scripts on `key`: their `SCRIPT LOAD` after a `NOSCRIPT` then
    /// goes to that node alone instead of every node, so it works while another node is down.
    pub fn at_key(mut self, key: &str) -> Self {
        if matches!(self.target, Target::Cluster(_)) {
            self.pinned = Some(Route::with_key(key, SlotAddr::Master));
        }
        self
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match (&mut self.target, self.pinned) {
            (Target::Single(connection), _) => connection.req_packed_command(cmd),
            (Target::Cluster(connection), None) => connection.req_packed_command(cmd),
            (Target::Cluster(connection), Some(route)) => Box::pin(async move {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                connection.route_command(cmd.clone(), routing).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match (&mut self.target, self.pinned) {
            (Target::Single(connection), _) => connection.req_packed_commands(pipeline, offset, count),
            // Unpinned, the cluster client routes a pipeline by its keys and refuses one whose
            // keys span slots (`CrossSlot`) before sending anything.
            (Target::Cluster(connection), None) => connection.req_packed_commands(pipeline, offset, count),
            (Target::Cluster(connection), Some(route)) => Box::pin(async move {
                connection
                    .route_pipeline(
                        pipeline.clone(),
                        offset,
                        count,
                        SingleNodeRoutingInfo::SpecificNode(route),
                    )
                    .await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.target {
            Target::Single(connection) => connection.get_db(),
            Target::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Whether all `keys` hash to one Redis Cluster slot (so one script, pipeline or transaction
/// may hold them all).
pub fn same_slot(keys: &[&str]) -> bool {
    let mut slots = keys.iter().map(Slot::for_key);
    match slots.next() {
        Some(first) => slots.all(|slot| slot == first),
        None => true,
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
            Backend::Single { client, manager },
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
        RedisConnection { target, pinned: None }
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
        // The connection has its own response timeout; this outer one also bounds reconnects.
        let outcome = tokio::time::timeout(self.inner.timeout * 2, call(self.connection())).await;
        let result = match outcome {
            Ok(result) => result.map_err(RedisError::from),
            Err(_) => Err(timed_out("redis call timed out")),
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

    /// One `PING`, bypassing the breaker (for readiness and `outgrow check`). On a cluster the
    /// client sends it to every master, and it succeeds only if all of them answer.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut connection = self.connection();
        let outcome = tokio::time::timeout(
            self.inner.timeout * 2,
            redis::cmd("PING").query_async::<Value>(&mut connection),
        )
        .await;
        match outcome {
            Ok(result) => result.map(drop).map_err(RedisError::from),
            Err(_) => Err(timed_out("redis ping timed out")),
        }
    }

    /// The nodes a subscriber may use: the server, or the cluster's seed nodes.
    fn nodes(&self) -> Vec<&Client> {
        match &self.inner.backend {
            Backend::Single { client, .. } => vec![client],
            Backend::Cluster { seeds, .. } => seeds.iter().collect(),
        }
    }

    /// A plain connection to `node` with this client's timeouts.
    async fn node_connection(&self, node: &Client) -> Result<MultiplexedConnection, RedisError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.timeout))
            .set_response_timeout(Some(self.inner.timeout));
        match tokio::time::timeout(
            self.inner.timeout * 2,
            node.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(result) => result.map_err(RedisError::from),
            Err(_) => Err(timed_out("redis connect timed out")),
        }
    }

    /// Subscribes to `channel` on one node, with a probe that tells when that node restarts.
    ///
    /// On a cluster, `PUBLISH` on any node reaches the subscribers of every node, so one
    /// node is enough: the last one that worked is tried first, then the next seeds in turn,
    /// so a dead node is failed over.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, RedisError> {
        let nodes = self.nodes();
        let first = self.inner.subscriber_node.load(Ordering::Relaxed);
        let mut last_error = None;
        for offset in 0..nodes.len() {
            let index = (first + offset) % nodes.len();
            let node = nodes[index];
            match self.subscribe_on(node, channel).await {
                Ok(subscription) => {
                    self.inner.subscriber_node.store(index, Ordering::Relaxed);
                    return Ok(subscription);
                }
                Err(error) => {
                    tracing::debug!(node = %node_name(node), %error, "cannot subscribe on this node");
                    last_error = Some(error);
                }
            }
        }
        // The next attempt starts after the node that failed last.
        self.inner
            .subscriber_node
            .store((first + 1) % nodes.len().max(1), Ordering::Relaxed);
        Err(last_error.unwrap_or(RedisError::CircuitOpen))
    }

    async fn subscribe_on(&self, node: &Client, channel: &str) -> Result<Subscription, RedisError> {
        let mut probe = self.node_connection(node).await?;
        let run_id = server_run_id(&mut probe).await?;
        let subscribing = async {
            let mut pubsub = node.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = match tokio::time::timeout(self.inner.timeout * 2, subscribing).await {
            Ok(result) => result?,
            Err(_) => return Err(timed_out("redis subscribe timed out")),
        };
        Ok(Subscription {
            pubsub,
            probe: NodeProbe {
                connection: probe,
                run_id,
                node: node_name(node),
            },
        })
    }

    /// What the cluster says of itself (`CLUSTER INFO`, `CLUSTER NODES`), asked of the first
    /// seed node that answers; `None` on a single server.
    pub async fn cluster_report(&self) -> Result<Option<ClusterReport>, RedisError> {
        let Backend::Cluster { seeds, .. } = &self.inner.backend else {
            return Ok(None);
        };
        let mut last_error = None;
        for seed in seeds {
            let asked = async {
                let mut connection = self.node_connection(seed).await?;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut connection)
                    .await?;
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut connection)
                    .await?;
                Ok::<_, RedisError>(ClusterReport::parse(&node_name(seed), &info, &nodes))
            };
            match asked.await {
                Ok(report) => return Ok(Some(report)),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or(RedisError::CircuitOpen))
    }
}

/// A pub/sub connection and the probe of the node it is on.
pub struct Subscription {
    /// The subscribed connection.
    pub pubsub: redis::aio::PubSub,
    /// Tells whether that node is still the same running server.
    pub probe: NodeProbe,
}

/// A command connection to the node a subscription is on, and that server's `run_id` when the
/// subscription was made: a subscriber socket does not always notice that its server went
/// away (a restart, a half-open connection), a changed or missing `run_id` does.
pub struct NodeProbe {
    connection: MultiplexedConnection,
    run_id: String,
    node: String,
}

impl NodeProbe {
    /// Whether the node still answers with the `run_id` it had when subscribed.
    pub async fn same_server(&mut self) -> bool {
        server_run_id(&mut self.connection)
            .await
            .is_ok_and(|current| current == self.run_id)
    }

    /// `host:port` of the node.
    pub fn node(&self) -> &str {
        &self.node
    }
}

/// The server's `run_id` (new at every start).
async fn server_run_id(connection: &mut MultiplexedConnection) -> Result<String, RedisError> {
    let info: String = redis::cmd("INFO").arg("server").query_async(connection).await?;
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .unwrap_or_default())
}

/// `host:port` of a node, never its credentials.
fn node_name(node: &Client) -> String {
    node.get_connection_info().addr().to_string()
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

    #[test]
    fn keys_with_one_hash_tag_share_a_slot_and_the_prefix_does_not_matter() {
        assert!(same_slot(&[
            "outgrow:session:{0192}",
            "outgrow:session:{0192}:refresh:ab",
            "other-prefix:session:{0192}:refresh:cd",
        ]));
        // Without tags, different keys almost always land in different slots (these do).
        assert!(!same_slot(&["outgrow:a", "outgrow:b"]));
        assert!(same_slot(&[]));
    }

    #[test]
    fn slots_match_what_redis_computes() {
        // `CLUSTER KEYSLOT foo` is 12182, and a tag hashes only what is inside it.
        assert_eq!(Slot::for_key("foo"), Slot::new(12182).expect("slot"));
        assert_eq!(Slot::for_key("x:{foo}:y"), Slot::for_key("foo"));
        // An empty tag is no tag: the whole key is hashed.
        assert_ne!(Slot::for_key("{}foo"), Slot::for_key("foo"));
    }

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
