//! The shared Redis tier (L2) and the sending side of the invalidation bus, with the queue of
//! invalidations that could not be sent.

use std::{collections::HashSet, sync::Mutex, time::Duration};

use bytes::Bytes;

use super::Entry;
use crate::redis_client::{RedisClient, RedisError};

/// Invalidations kept for replay while Redis is unreachable; beyond this, entries are bounded
/// by their TTL only.
const MAX_PENDING_INVALIDATIONS: usize = 10_000;

/// The Redis tier and the invalidation bus.
pub(super) struct SharedTier {
    pub(super) redis: RedisClient,
    /// Upper bound on an L1 entry's life when another instance may write the same key.
    pub(super) local_ttl: Duration,
    /// Invalidations that could not be sent; replayed on reconnect.
    pending: Mutex<HashSet<String>>,
}

/// Shared-tier encoding: a marker byte (`+` present, `-` absent) then the JSON value.
impl SharedTier {
    pub(super) fn new(redis: RedisClient, local_ttl: Duration) -> Self {
        Self {
            redis,
            local_ttl,
            pending: Mutex::new(HashSet::new()),
        }
    }

    pub(super) fn channel(&self) -> String {
        self.redis.key("cache-invalidations")
    }

    pub(super) async fn get(&self, full_key: &str) -> Option<Entry> {
        let key = self.redis.key(&format!("cache:{full_key}"));
        let found: Option<(Vec<u8>, i64)> = self
            .redis
            .run("cache_get", |mut connection| async move {
                redis::pipe()
                    .get(&key)
                    .pttl(&key)
                    .query_async::<(Option<Vec<u8>>, i64)>(&mut connection)
                    .await
                    .map(|(value, ttl)| value.map(|value| (value, ttl)))
            })
            .await
            .ok()
            .flatten();
        let (stored, remaining_ms) = found?;
        let value = match stored.split_first() {
            Some((b'+', json)) => Some(Bytes::copy_from_slice(json)),
            Some((b'-', _)) => None,
            _ => return None,
        };
        let remaining = Duration::from_millis(u64::try_from(remaining_ms).unwrap_or(0).max(1));
        Some(Entry {
            value,
            ttl: remaining.min(self.local_ttl),
        })
    }

    /// The shared-tier representation of `entry`.
    fn stored(entry: &Entry) -> Vec<u8> {
        let mut stored = Vec::with_capacity(entry.value.as_ref().map_or(1, |v| v.len() + 1));
        match &entry.value {
            Some(json) => {
                stored.push(b'+');
                stored.extend_from_slice(json);
            }
            None => stored.push(b'-'),
        }
        stored
    }

    pub(super) async fn set(&self, full_key: &str, entry: &Entry) {
        let key = self.redis.key(&format!("cache:{full_key}"));
        let stored = Self::stored(entry);
        let ttl_ms = entry.ttl.as_millis().max(1) as u64;
        // Best effort: a failed write only costs a later miss.
        let _ = self
            .redis
            .run("cache_set", |mut connection| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(stored)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await;
    }

    /// Stores `entry` and tells the other instances to drop their copy, in one round trip.
    pub(super) async fn set_and_announce(&self, full_key: &str, entry: &Entry) {
        let key = self.redis.key(&format!("cache:{full_key}"));
        let stored = Self::stored(entry);
        let ttl_ms = entry.ttl.as_millis().max(1) as u64;
        let channel = self.channel();
        let message = full_key.to_owned();
        let sent = self
            .redis
            .run("cache_put", |connection| async move {
                redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(stored)
                    .arg("PX")
                    .arg(ttl_ms)
                    .ignore()
                    .publish(&channel, &message)
                    .query_async::<()>(&mut connection.at_key(&key))
                    .await
            })
            .await;
        if sent.is_err() {
            // The other instances must still hear of the write: queue the invalidation.
            self.invalidate(full_key.to_owned()).await;
        }
    }

    pub(super) async fn invalidate(&self, full_key: String) {
        if self.send_invalidation(&full_key).await.is_err() {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if pending.len() < MAX_PENDING_INVALIDATIONS {
                pending.insert(full_key);
            } else {
                metrics::counter!("cache_invalidations_dropped_total").increment(1);
            }
        }
    }

    async fn send_invalidation(&self, full_key: &str) -> Result<(), RedisError> {
        let key = self.redis.key(&format!("cache:{full_key}"));
        let channel = self.channel();
        let message = full_key.to_owned();
        self.redis
            .run("cache_invalidate", |connection| async move {
                redis::pipe()
                    .del(&key)
                    .publish(&channel, &message)
                    .query_async::<()>(&mut connection.at_key(&key))
                    .await
            })
            .await
    }

    pub(super) fn has_pending(&self) -> bool {
        !self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_empty()
    }

    pub(super) async fn replay_pending(&self) {
        let keys: Vec<String> = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pending.drain().collect()
        };
        for key in keys {
            self.invalidate(key).await;
        }
    }
}
