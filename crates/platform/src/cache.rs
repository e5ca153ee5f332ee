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

use std::{
    collections::HashSet,
    future::Future,
    hash::Hash,
    str::FromStr,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::StreamExt;
use moka::{Expiry, future::Cache as MokaCache};
use rand::Rng;
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    redis_client::{RedisClient, Subscription},
    shutdown::ShutdownSignal,
};

/// Invalidations kept for replay while Redis is unreachable; beyond this, entries are bounded
/// by their TTL only.
const MAX_PENDING_INVALIDATIONS: usize = 10_000;

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

/// An in-process store of cached values that must be invalidated with the [`Cache`] it is
/// attached to (see [`Cache::attach`]).
pub trait LocalTier: Send + Sync {
    /// Forgets `key`.
    fn invalidate(&self, key: &str);
    /// Forgets everything (invalidation messages may have been missed).
    fn invalidate_all(&self);
}

/// The Redis tier and the invalidation bus.
struct SharedTier {
    redis: RedisClient,
    /// Upper bound on an L1 entry's life when another instance may write the same key.
    local_ttl: Duration,
    /// Invalidations that could not be sent; replayed on reconnect.
    pending: Mutex<HashSet<String>>,
}

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
            shared: Some(Arc::new(SharedTier {
                redis,
                local_ttl,
                pending: Mutex::new(HashSet::new()),
            })),
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
        if let Some(entry) = self.entries.get(&full_key).await {
            count_request(cache, true);
            return Ok(entry.value);
        }
        let from_shared = AtomicBool::new(false);
        let entry = self
            .entries
            .entry(full_key.clone())
            .or_try_insert_with(async {
                if let Some(shared) = &self.shared
                    && let Some(entry) = shared.get(&full_key).await
                {
                    from_shared.store(true, Ordering::Relaxed);
                    return Ok(entry);
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
        let cache = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REPEAT_INVALIDATION_AFTER).await;
            cache.invalidate_now(&full_key).await;
        });
    }

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
                    Err(_) => Err(crate::redis_client::RedisError::CircuitOpen),
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

/// `cache_requests_total{cache, result}`.
fn count_request(cache: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    crate::telemetry::count("cache_requests_total", &[("cache", cache), ("result", result)], 1);
}

/// A typed cache in this process only, for the hottest reads: values are kept as they are (no
/// serialisation), live at most `ttl`, and are invalidated through the [`Cache`] it is attached
/// to — `cache.invalidate(name, key)` on any instance reaches it.
pub struct LocalCache<K, V> {
    name: &'static str,
    entries: Option<moka::sync::Cache<K, V>>,
}

impl<K, V> std::fmt::Debug for LocalCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K, V> LocalCache<K, V>
where
    K: Hash + Eq + FromStr + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache named `name` (its hit/miss metrics and invalidation messages use the name) of at
    /// most `capacity` entries living `ttl` each, attached to `bus`. A zero `ttl` caches
    /// nothing.
    pub fn attached(name: &'static str, capacity: u64, ttl: Duration, bus: &Cache) -> Arc<Self> {
        let entries = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build()
        });
        let cache = Arc::new(Self { name, entries });
        bus.attach(name, cache.clone());
        cache
    }

    /// The cached value of `key`, counted as a hit or a miss.
    pub fn get(&self, key: &K) -> Option<V> {
        let found = self.entries.as_ref().and_then(|entries| entries.get(key));
        count_request(self.name, found.is_some());
        found
    }

    /// Stores `value` under `key`.
    pub fn insert(&self, key: K, value: V) {
        if let Some(entries) = &self.entries {
            entries.insert(key, value);
        }
    }
}

impl<K, V> LocalTier for LocalCache<K, V>
where
    K: Hash + Eq + FromStr + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn invalidate(&self, key: &str) {
        if let (Some(entries), Ok(key)) = (&self.entries, key.parse::<K>()) {
            entries.invalidate(&key);
        }
    }

    fn invalidate_all(&self) {
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }
}

fn local_tier(capacity: u64) -> MokaCache<String, Entry> {
    MokaCache::builder()
        .max_capacity(capacity)
        .expire_after(PerEntryTtl)
        .build()
}

/// Shared-tier encoding: a marker byte (`+` present, `-` absent) then the JSON value.
impl SharedTier {
    fn channel(&self) -> String {
        self.redis.key("cache-invalidations")
    }

    async fn get(&self, full_key: &str) -> Option<Entry> {
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

    async fn set(&self, full_key: &str, entry: &Entry) {
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
    async fn set_and_announce(&self, full_key: &str, entry: &Entry) {
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

    async fn invalidate(&self, full_key: String) {
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

    async fn send_invalidation(&self, full_key: &str) -> Result<(), crate::redis_client::RedisError> {
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

    fn has_pending(&self) -> bool {
        !self
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_empty()
    }

    async fn replay_pending(&self) {
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

fn encode<T: Serialize>(value: &T) -> Bytes {
    // Serialising plain data structs to JSON cannot fail (no maps with non-string keys).
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

fn jittered(ttl: Duration) -> Duration {
    let factor = rand::rng().random_range(0.9..=1.1);
    ttl.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn policy() -> CachePolicy {
        CachePolicy::with_ttl(Duration::from_secs(60))
    }

    #[tokio::test]
    async fn a_second_read_is_served_without_the_loader() {
        let cache = Cache::in_process(100);
        let loads = AtomicUsize::new(0);
        for _ in 0..2 {
            let value: Option<String> = cache
                .get_or_load("t", "k", policy(), || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(Some("v".to_owned()))
                })
                .await
                .expect("loads");
            assert_eq!(value.as_deref(), Some("v"));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn absent_values_are_cached_too() {
        let cache = Cache::in_process(100);
        let loads = AtomicUsize::new(0);
        for _ in 0..3 {
            let value: Option<String> = cache
                .get_or_load("t", "missing", policy(), || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(None)
                })
                .await
                .expect("loads");
            assert!(value.is_none());
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn concurrent_misses_run_the_loader_once() {
        let cache = Cache::in_process(100);
        let loads = Arc::new(AtomicUsize::new(0));
        let reads = (0..50).map(|_| {
            let cache = cache.clone();
            let loads = loads.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load("t", "hot", policy(), || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, std::io::Error>(Some(7_u32))
                    })
                    .await
                    .expect("loads")
            })
        });
        for read in futures_join(reads).await {
            assert_eq!(read, Some(7));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalidation_makes_the_next_read_load_again() {
        let cache = Cache::in_process(100);
        let load = |value: u32| move || async move { Ok::<_, std::io::Error>(Some(value)) };
        let first: Option<u32> = cache.get_or_load("t", "k", policy(), load(1)).await.expect("ok");
        cache.invalidate("t", "k").await;
        let second: Option<u32> = cache.get_or_load("t", "k", policy(), load(2)).await.expect("ok");
        assert_eq!((first, second), (Some(1), Some(2)));
    }

    #[tokio::test]
    async fn a_put_value_is_read_back_without_the_loader_until_its_repeat_invalidation() {
        let cache = Cache::in_process(100);
        let loads = AtomicUsize::new(0);
        let read = || {
            cache.get_or_load("t", "k", policy(), || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Some("from the database".to_owned()))
            })
        };
        assert_eq!(read().await.expect("ok").as_deref(), Some("from the database"));

        cache.put("t", "k", policy(), &"written through".to_owned()).await;

        assert_eq!(read().await.expect("ok").as_deref(), Some("written through"));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        tokio::time::sleep(REPEAT_INVALIDATION_AFTER + Duration::from_millis(100)).await;
        assert_eq!(read().await.expect("ok").as_deref(), Some("from the database"));
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_json_of_a_cached_value_is_returned_as_stored() {
        let cache = Cache::in_process(100);
        let json = cache
            .get_or_load_json("t", "k", policy(), || async {
                Ok::<_, std::io::Error>(Some(vec![1, 2]))
            })
            .await
            .expect("ok");
        assert_eq!(json.as_deref(), Some(&b"[1,2]"[..]));
    }

    #[tokio::test]
    async fn loader_errors_are_returned_and_not_cached() {
        let cache = Cache::in_process(100);
        let failed: Result<Option<u32>, _> = cache
            .get_or_load("t", "k", policy(), || async {
                Err(std::io::Error::other("down"))
            })
            .await;
        assert!(failed.is_err());
        let loaded: Option<u32> = cache
            .get_or_load("t", "k", policy(), || async { Ok::<_, std::io::Error>(Some(3)) })
            .await
            .expect("ok");
        assert_eq!(loaded, Some(3));
    }

    #[tokio::test]
    async fn a_fill_racing_a_write_is_corrected_by_the_repeated_invalidation() {
        let cache = Cache::in_process(100);
        // A read starts loading the old value, slowly…
        let racing = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load("t", "k", policy(), || async {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, std::io::Error>(Some("old".to_owned()))
                    })
                    .await
                    .expect("loads")
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // …the write commits and invalidates while that load is in flight…
        cache.invalidate("t", "k").await;
        assert_eq!(racing.await.expect("task").as_deref(), Some("old"));
        // …so the old value sits in the cache until the repeated invalidation.
        tokio::time::sleep(REPEAT_INVALIDATION_AFTER + Duration::from_millis(100)).await;
        let fresh: Option<String> = cache
            .get_or_load("t", "k", policy(), || async {
                Ok::<_, std::io::Error>(Some("new".to_owned()))
            })
            .await
            .expect("loads");
        assert_eq!(fresh.as_deref(), Some("new"));
    }

    #[tokio::test]
    async fn an_invalidation_reaches_an_attached_local_cache_at_once() {
        let bus = Cache::in_process(100);
        let sessions: Arc<LocalCache<u64, &str>> =
            LocalCache::attached("sessions", 100, Duration::from_secs(60), &bus);
        sessions.insert(7, "active");
        sessions.insert(8, "active");

        bus.invalidate("sessions", "7").await;
        bus.invalidate("other", "8").await;

        assert_eq!(sessions.get(&7), None);
        assert_eq!(sessions.get(&8), Some("active"));
    }

    #[test]
    fn a_local_cache_with_a_zero_ttl_keeps_nothing() {
        let bus = Cache::in_process(100);
        let sessions: Arc<LocalCache<u64, u64>> = LocalCache::attached("s", 100, Duration::ZERO, &bus);
        sessions.insert(1, 1);
        assert_eq!(sessions.get(&1), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let ttl = jittered(Duration::from_secs(100));
            assert!(ttl >= Duration::from_secs(90) && ttl <= Duration::from_secs(110));
        }
    }

    async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut results = Vec::new();
        for handle in handles {
            results.push(handle.await.expect("task"));
        }
        results
    }
}
