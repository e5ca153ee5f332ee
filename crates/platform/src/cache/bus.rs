//! The invalidation bus: forgetting a key here, in the shared tier and on every other instance,
//! and the listener that hears the other instances' writes.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;

use super::{Cache, LocalTier, REPEAT_INVALIDATION_AFTER};
use crate::{
    redis_client::{RedisError, Subscription},
    shutdown::ShutdownSignal,
};

impl Cache {
    /// Makes `tier` hear every invalidation of `cache`: those made here, at once, and those of
    /// other instances, as their messages arrive; it is cleared whenever this instance may have
    /// missed messages.
    pub fn attach(&self, cache: &'static str, tier: Arc<dyn LocalTier>) {
        self.attached
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((cache, tier));
    }

    fn for_attached(&self, each: impl Fn(&'static str, &dyn LocalTier)) {
        let attached = self
            .attached
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (name, tier) in attached.iter() {
            each(name, tier.as_ref());
        }
    }

    fn invalidate_local(&self, full_key: &str) {
        if let Some((cache, key)) = full_key.split_once(':') {
            self.for_attached(|name, tier| {
                if name == cache {
                    tier.invalidate(key);
                }
            });
        }
    }

    /// Forgets `cache`/`key` here, in the shared tier and in every other instance's L1; every
    /// write path to the underlying record calls this.
    pub async fn invalidate(&self, cache: &'static str, key: &str) {
        let full_key = format!("{cache}:{key}");
        self.invalidate_now(&full_key).await;
        metrics::counter!("cache_invalidations_total", "cache" => cache).increment(1);
        self.invalidate_again_later(full_key);
    }

    /// Forgets `full_key` once more after [`REPEAT_INVALIDATION_AFTER`], removing an old value
    /// that a fill racing the write may have stored meanwhile.
    pub(super) fn invalidate_again_later(&self, full_key: String) {
        let cache = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REPEAT_INVALIDATION_AFTER).await;
            cache.invalidate_now(&full_key).await;
        });
    }

    async fn invalidate_now(&self, full_key: &str) {
        self.entries.invalidate(full_key).await;
        self.invalidate_local(full_key);
        if let Some(shared) = &self.shared {
            shared.invalidate(full_key.to_owned()).await;
        }
    }

    /// Listens for other instances' invalidations until `stop`, reconnecting after Redis
    /// restarts. Does nothing for an in-process cache.
    pub async fn run_invalidation_listener(self, stop: ShutdownSignal) {
        let Some(shared) = self.shared.clone() else { return };
        let stopped = stop.stopped();
        tokio::pin!(stopped);
        let channel = shared.channel();
        let mut backoff = Duration::from_millis(100);
        loop {
            // Bounded as a whole: a Redis that accepts the connection while shutting down (or
            // a half-open socket) must not leave this listener waiting forever.
            let connected = async {
                match tokio::time::timeout(Duration::from_secs(2), shared.redis.subscribe(&channel)).await {
                    Ok(result) => result,
                    Err(_) => Err(RedisError::CircuitOpen),
                }
            };
            let Subscription {
                mut pubsub,
                mut probe,
            } = tokio::select! {
                result = connected => match result {
                    Ok(subscription) => subscription,
                    Err(error) => {
                        tracing::debug!(%error, "cache invalidation bus unavailable; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = &mut stopped => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                },
                _ = &mut stopped => return,
            };
            backoff = Duration::from_millis(100);
            // Messages published while this instance was not listening are lost: forget
            // everything local, and send what this instance could not send.
            self.entries.invalidate_all();
            self.for_attached(|_, tier| tier.invalidate_all());
            shared.replay_pending().await;
            metrics::counter!("cache_bus_connects_total").increment(1);
            tracing::info!(channel, node = probe.node(), "listening for cache invalidations");
            let mut messages = pubsub.on_message();
            // A subscriber socket does not always notice that its node went away (a restart, a
            // half-open connection): check every second that the same server still answers.
            // On a cluster, the other nodes may fail and come back without this one noticing:
            // invalidations queued meanwhile are retried on the same tick.
            let mut liveness = tokio::time::interval(Duration::from_secs(1));
            liveness.tick().await;
            loop {
                tokio::select! {
                    _ = liveness.tick() => {
                        if !probe.same_server().await {
                            tracing::warn!(node = probe.node(), "Redis restarted or is unreachable; resubscribing");
                            break;
                        }
                        if shared.has_pending() {
                            shared.replay_pending().await;
                        }
                    }
                    message = messages.next() => match message {
                        Some(message) => {
                            if let Ok(key) = message.get_payload::<String>() {
                                self.entries.invalidate(&key).await;
                                self.invalidate_local(&key);
                            }
                        }
                        None => {
                            tracing::warn!("cache invalidation bus disconnected; reconnecting");
                            break;
                        }
                    },
                    _ = &mut stopped => return,
                }
            }
        }
    }
}
