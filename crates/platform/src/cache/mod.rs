//! Cache-aside with TTL jitter, single-flight loads and negative caching, in one or two tiers.
//!
//! Embedded: one in-process tier (moka). Scaled: the in-process tier (L1) in front of a shared
//! Redis tier (L2). Values are stored as serialised JSON bytes in both, so a value read from the
//! cache is always a private copy and both tiers hold the same representation.
//!
//! Single-flight comes from moka: concurrent misses on one key in one instance run the loader
//! once and every waiter receives its result, so an expiring hot key never stampedes the
//! database.
//!
//! Invalidation across instances: a write deletes the L2 entry and publishes the key on a Redis
//! channel; every instance drops it from its L1 on receipt (milliseconds). If that message is
//! lost — the subscriber was disconnected — the instance clears its whole L1 when it
//! resubscribes, and L1 entries never live longer than `local_ttl` anyway: that is the bound on
//! staleness from another instance's L1. An invalidation that cannot reach Redis is queued and
//! replayed when Redis is back.
//!
//! [`LocalCache`] is the typed, in-process-only variant for reads so hot that decoding a value
//! on every hit would cost more than the rest of the request (the session check of every
//! bearer request): no shared tier, no serialisation, a short TTL — and the same invalidation
//! bus, so a write on one instance reaches every other instance's copy in milliseconds.

mod bus;
mod local;
mod shared;
#[cfg(test)]
mod tests;

use std::{
    future::Future,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use moka::{Expiry, future::Cache as MokaCache};
use rand::Rng;
use serde::{Serialize, de::DeserializeOwned};

pub use local::{LocalCache, LocalTier};
use shared::SharedTier;

use crate::redis_client::RedisClient;

/// Every invalidation is repeated after this delay. A fill that read the old row just before
/// the write (a single-flight load in progress, here or on another instance) can store the old
/// value after the first invalidation; the second removes it, so that race leaves a stale entry
/// for at most this long.
pub const REPEAT_INVALIDATION_AFTER: Duration = Duration::from_millis(500);

/// How long entries of one kind live.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// Lifetime of a present value; each entry gets ±10 % jitter so entries written together
    /// do not expire together.
    pub ttl: Duration,
    /// Lifetime of a remembered absence ("no such key"), kept short so a newly created record
    /// shows up quickly even without an invalidation.
    pub negative_ttl: Duration,
}

impl CachePolicy {
    /// A policy with `ttl`, remembering absences for a tenth of it (at most 10 s).
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            negative_ttl: (ttl / 10).min(Duration::from_secs(10)),
        }
    }
}

#[derive(Clone)]
struct Entry {
    /// `None` records that the loader found nothing (negative caching).
    value: Option<Bytes>,
    /// Already jittered.
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Entry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The cache every feature shares; each read names its cache, which labels the hit/miss
/// metrics and prefixes the keys.
#[derive(Clone)]
pub struct Cache {
    entries: MokaCache<String, Entry>,
    shared: Option<Arc<SharedTier>>,
    /// Typed caches that hear this cache's invalidations, by cache name.
    attached: Arc<RwLock<Vec<Attached>>>,
}

/// A [`LocalTier`] and the cache name whose invalidations it hears.
type Attached = (&'static str, Arc<dyn LocalTier>);

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

/// Why a cached read failed: only the loader can fail; a corrupt entry is reloaded.
#[derive(Debug, thiserror::Error)]
#[error("loading a cache entry failed: {0}")]
pub struct LoadError<E>(pub Arc<E>);

impl Cache {
    /// The in-process cache, holding at most `capacity` entries (least recently used first out).
    pub fn in_process(capacity: u64) -> Self {
        Self {
            entries: local_tier(capacity),
            shared: None,
            attached: Arc::default(),
        }
    }

    /// In-process L1 (entries capped at `local_ttl`) in front of Redis L2. Call
    /// [`Cache::run_invalidation_listener`] once so this instance hears other instances' writes.
    pub fn tiered(capacity: u64, redis: RedisClient, local_ttl: Duration) -> Self {
        Self {
            entries: local_tier(capacity),
            shared: Some(Arc::new(SharedTier::new(redis, local_ttl))),
            attached: Arc::default(),
        }
    }

    /// Which backend serves this cache, for the start-up log and `outgrow check`.
    pub fn backend_name(&self) -> &'static str {
        match self.shared {
            None => "in-process",
            Some(_) => "in-process L1 + redis L2",
        }
    }

    /// Returns the value under `cache`/`key`, loading and storing it on a miss. The loader's
    /// `None` is cached too, for the policy's negative TTL.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        cache: &'static str,
        key: &str,
        policy: CachePolicy,
        load: F,
    ) -> Result<Option<T>, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let Some(bytes) = self.get_or_load_json(cache, key, policy, load).await? else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                // A format change between releases; drop the entry rather than fail.
                tracing::warn!(cache, %error, "undecodable cache entry dropped");
                self.invalidate(cache, key).await;
                Ok(None)
            }
        }
    }

    /// Like [`Cache::get_or_load`], but returns the cached JSON itself: a handler whose answer
    /// *is* the cached value sends these bytes as they are, with no decoding and re-encoding.
    pub async fn get_or_load_json<T, E, F, Fut>(
        &self,
        cache: &'static str,
        key: &str,
        policy: CachePolicy,
        load: F,
    ) -> Result<Option<Bytes>, LoadError<E>>
    where
        T: Serialize,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let full_key = format!("{cache}:{key}");
        // The common case first: a hit costs one lookup, without the single-flight machinery.
        let started = Instant::now();
        let local = self.entries.get(&full_key).await;
        observe_read(cache, "local", started);
        if let Some(entry) = local {
            count_request(cache, true);
            return Ok(entry.value);
        }
        let from_shared = AtomicBool::new(false);
        let entry = self
            .entries
            .entry(full_key.clone())
            .or_try_insert_with(async {
                if let Some(shared) = &self.shared {
                    let started = Instant::now();
                    let found = shared.get(&full_key).await;
                    observe_read(cache, "shared", started);
                    if let Some(entry) = found {
                        from_shared.store(true, Ordering::Relaxed);
                        return Ok(entry);
                    }
                }
                let value = load().await?;
                let bytes = value.as_ref().map(encode);
                let ttl = jittered(if bytes.is_some() {
                    policy.ttl
                } else {
                    policy.negative_ttl
                });
                let mut entry = Entry { value: bytes, ttl };
                if let Some(shared) = &self.shared {
                    shared.set(&full_key, &entry).await;
                    entry.ttl = entry.ttl.min(shared.local_ttl);
                }
                Ok::<_, E>(entry)
            })
            .await
            .map_err(LoadError)?;
        let loaded = entry.is_fresh() && !from_shared.load(Ordering::Relaxed);
        count_request(cache, !loaded);
        if from_shared.load(Ordering::Relaxed) {
            metrics::counter!("cache_shared_hits_total", "cache" => cache).increment(1);
        }
        Ok(entry.into_value().value)
    }

    /// Write-through: stores the fresh `value` of `cache`/`key` after a write to its record,
    /// here and in the shared tier, so the next read is a hit with the new value; every other
    /// instance drops its own copy (and reads the new one from the shared tier). As with
    /// [`Cache::invalidate`], the entry is invalidated again 500 ms later, which removes an old
    /// value that a fill racing the write may have stored meanwhile.
    pub async fn put<T: Serialize>(&self, cache: &'static str, key: &str, policy: CachePolicy, value: &T) {
        let full_key = format!("{cache}:{key}");
        let mut entry = Entry {
            value: Some(encode(value)),
            ttl: jittered(policy.ttl),
        };
        if let Some(shared) = &self.shared {
            shared.set_and_announce(&full_key, &entry).await;
            entry.ttl = entry.ttl.min(shared.local_ttl);
        }
        self.entries.insert(full_key.clone(), entry).await;
        metrics::counter!("cache_writes_total", "cache" => cache).increment(1);
        self.invalidate_again_later(full_key);
    }
}

/// `cache_requests_total{cache, result}`.
fn count_request(cache: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    crate::telemetry::count("cache_requests_total", &[("cache", cache), ("result", result)], 1);
}

/// `cache_read_duration_seconds{cache, tier}`.
fn observe_read(cache: &'static str, tier: &'static str, started: Instant) {
    crate::telemetry::observe(
        "cache_read_duration_seconds",
        &[("cache", cache), ("tier", tier)],
        started.elapsed().as_secs_f64(),
    );
}

fn local_tier(capacity: u64) -> MokaCache<String, Entry> {
    MokaCache::builder()
        .max_capacity(capacity)
        .expire_after(PerEntryTtl)
        .build()
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    // Serialising plain data structs to JSON cannot fail (no maps with non-string keys).
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

fn jittered(ttl: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..=1.1);
    ttl.mul_f64(factor)
}
