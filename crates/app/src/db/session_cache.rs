//! The session check of every bearer request, answered from this instance's memory.
//!
//! Every authenticated request must know that its session is still active (so logout works at
//! once), but asking the store each time costs a database read or a Redis round trip per
//! request. [`CachedSessions`] wraps any [`SessionStore`] and keeps "session `sid` is active
//! until …" (or "is not") in a typed in-process cache for `session_cache_ttl` (1 s by
//! default). Revocation keeps its meaning:
//!
//! - on the instance that revokes (logout, logout-all, password change, refresh-token reuse)
//!   the entry is dropped before the answer is sent: the next request is refused;
//! - every other instance drops it when the invalidation message arrives over the cache's bus
//!   (Redis pub/sub, milliseconds); an instance that may have missed messages clears all of
//!   them when it resubscribes;
//! - without the bus (no Redis) or if a message is lost, no entry outlives the TTL: that is
//!   the documented bound (≤ `session_cache_ttl`).
//!
//! Cookie sign-ins are not cached: browsers send far fewer requests, and the cookie check
//! compares a secret's hash that the cache would have to keep.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use outgrow_domain::UserId;
use outgrow_platform::cache::{Cache, LocalCache};
use uuid::Uuid;

use crate::repo::{NewSession, RefreshExchange, Rotation, Session, SessionCookie, SessionStore, StoreError};

/// The cache name: metrics (`cache_requests_total{cache="sessions"}`) and invalidation messages.
pub const SESSIONS_CACHE: &str = "sessions";

/// Sessions remembered at most (about 100 bytes each).
const CAPACITY: u64 = 200_000;

/// A [`SessionStore`] whose `active` checks are served from memory (see the module docs).
pub struct CachedSessions {
    inner: Arc<dyn SessionStore>,
    /// `None` remembers that the session is unknown, revoked or expired.
    active: Arc<LocalCache<Uuid, Option<Session>>>,
    bus: Cache,
}

impl CachedSessions {
    /// Wraps `inner`; entries live `ttl` and hear invalidations through `bus`.
    pub fn new(inner: Arc<dyn SessionStore>, bus: &Cache, ttl: Duration) -> Self {
        Self {
            inner,
            active: LocalCache::attached(SESSIONS_CACHE, CAPACITY, ttl, bus),
            bus: bus.clone(),
        }
    }

    /// Forgets `sid` here at once and on every other instance as the message arrives.
    async fn forget(&self, sid: Uuid) {
        self.bus.invalidate(SESSIONS_CACHE, &sid.to_string()).await;
    }
}

#[async_trait::async_trait]
impl SessionStore for CachedSessions {
    async fn create(&self, new: NewSession) -> Result<(), StoreError> {
        let session = new.session.clone();
        self.inner.create(new).await?;
        // Write-through: the first request with the new tokens needs no lookup.
        self.active.insert(session.id, Some(session));
        Ok(())
    }

    async fn rotate(&self, exchange: RefreshExchange, now: DateTime<Utc>) -> Result<Rotation, StoreError> {
        let rotation = self.inner.rotate(exchange, now).await?;
        if let Rotation::Reused(revoked) = rotation {
            self.forget(revoked).await;
        }
        Ok(rotation)
    }

    async fn active(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Session>, StoreError> {
        let cached = match self.active.get(&id) {
            Some(cached) => cached,
            None => {
                let loaded = self.inner.active(id, now).await?;
                self.active.insert(id, loaded.clone());
                loaded
            }
        };
        Ok(cached.filter(|session| session.expires_at > now))
    }

    async fn by_cookie(
        &self,
        cookie: SessionCookie,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        self.inner.by_cookie(cookie, now).await
    }

    async fn revoke(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.revoke(id, now).await?;
        self.forget(id).await;
        Ok(())
    }

    async fn revoke_all(
        &self,
        user_id: UserId,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let revoked = self.inner.revoke_all(user_id, keep, now).await?;
        for sid in &revoked {
            self.forget(*sid).await;
        }
        Ok(revoked)
    }

    async fn delete_expired(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.delete_expired(before).await
    }

    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
}
