//! Pub/sub for the invalidation bus: a subscription on one node, failing over between the
//! seed nodes, with a probe that notices when that node restarts; and the per-node
//! connections that `outgrow check` asks for the cluster's own report.

use std::sync::atomic::Ordering;

use redis::{Client, aio::MultiplexedConnection};

use super::{Backend, ClusterReport, RedisClient, RedisError};

impl RedisClient {
    /// The nodes a subscriber may use: the server, or the cluster's seed nodes.
    fn nodes(&self) -> Vec<&Client> {
        match &self.inner.backend {
            Backend::Single { client, .. } => vec![&**client],
            Backend::Cluster { seeds, .. } => seeds.iter().collect(),
        }
    }

    /// A plain connection to `node` with this client's timeouts.
    async fn node_connection(&self, node: &Client) -> Result<MultiplexedConnection, RedisError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.timeout))
            .set_response_timeout(Some(self.inner.timeout));
        let connecting = node.get_multiplexed_async_connection_with_config(&config);
        self.bounded("redis connect timed out", connecting).await
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
        let pubsub = self.bounded("redis subscribe timed out", subscribing).await?;
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
