//! Cache-aside with TTL jitter, single-flight loads and negative caching.
//!
//! Values are stored as serialised JSON bytes rather than live objects: the embedded cache
//! and the shared Redis tier (a later backend) then hold the same representation, and a value
//! read from the cache is always a private copy that no caller can mutate under another.
//!
//! Single-flight comes from moka: concurrent misses on one key run the loader once and every
//! waiter receives its result, so an expiring hot key never stampedes the database.

use std::{future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use moka::{Expiry, future::Cache as MokaCache};
use rand::Rng;
use serde::{Serialize, de::DeserializeOwned};

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
            entries: MokaCache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }

    /// Which backend serves this cache, for the start-up log and `outgrow check`.
    pub fn backend_name(&self) -> &'static str {
        "in-process"
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
        let full_key = format!("{cache}:{key}");
        let entry = self
            .entries
            .entry(full_key.clone())
            .or_try_insert_with(async {
                let value = load().await?;
                let bytes = value.as_ref().map(encode);
                let ttl = jittered(if bytes.is_some() {
                    policy.ttl
                } else {
                    policy.negative_ttl
                });
                Ok::<_, E>(Entry { value: bytes, ttl })
            })
            .await
            .map_err(LoadError)?;
        let result = if entry.is_fresh() { "miss" } else { "hit" };
        metrics::counter!("cache_requests_total", "cache" => cache, "result" => result).increment(1);
        match &entry.value().value {
            None => Ok(None),
            Some(bytes) => match serde_json::from_slice(bytes) {
                Ok(value) => Ok(Some(value)),
                Err(error) => {
                    // A format change between releases; drop the entry rather than fail.
                    tracing::warn!(cache, %error, "undecodable cache entry dropped");
                    self.entries.invalidate(&full_key).await;
                    Ok(None)
                }
            },
        }
    }

    /// Forgets `cache`/`key`; every write path to the underlying record calls this.
    pub async fn invalidate(&self, cache: &'static str, key: &str) {
        self.entries.invalidate(&format!("{cache}:{key}")).await;
        metrics::counter!("cache_invalidations_total", "cache" => cache).increment(1);
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
