//! The one connection type callers see, over one server or a cluster, and the slot rule that
//! keys travelling together must follow.

use redis::{
    Cmd, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager},
    cluster_async::ClusterConnection,
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr},
};

/// A connection to the shared Redis, whatever it is: commands, pipelines and scripts run on it
/// as on any `redis` connection. Cheap to clone.
#[derive(Clone)]
pub struct RedisConnection {
    target: Target,
    /// Cluster only: every command and pipeline goes to this slot's master.
    pinned: Option<Route>,
}

#[derive(Clone)]
pub(super) enum Target {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// A connection to `target`, sending each command where its keys live.
    pub(super) fn new(target: Target) -> Self {
        Self { target, pinned: None }
    }

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
}
