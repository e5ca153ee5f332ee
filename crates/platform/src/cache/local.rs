//! Typed, in-process-only caches that hear the invalidations of the [`Cache`] they are attached
//! to.

use std::{hash::Hash, str::FromStr, sync::Arc, time::Duration};

use super::{Cache, count_request};

/// An in-process store of cached values that must be invalidated with the [`Cache`] it is
/// attached to (see [`Cache::attach`]).
pub trait LocalTier: Send + Sync {
    /// Forgets `key`.
    fn invalidate(&self, key: &str);
    /// Forgets everything (invalidation messages may have been missed).
    fn invalidate_all(&self);
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
