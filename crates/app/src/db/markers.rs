//! Read-your-writes markers: "user X's data was written at most `window` ago".
//!
//! While a user's marker is set, reads of that user's data go to the primary, so neither the
//! user nor the cache (which a read fills) can see a replica's older copy. Markers must be seen
//! by every instance — a user may write through instance A and read through B — so with Redis
//! they live there; when Redis cannot answer, a read is treated as recent (primary: always
//! correct, only slower).

use std::time::Duration;

use moka::future::Cache;
use outgrow_domain::UserId;
use outgrow_platform::redis_client::RedisClient;

/// Where markers live.
#[async_trait::async_trait]
pub trait WriteMarkers: Send + Sync {
    /// Records a write to `user`'s data now.
    async fn mark(&self, user: UserId);
    /// Whether `user`'s data was written within the window (or that cannot be known).
    async fn is_recent(&self, user: UserId) -> bool;
}

/// Markers in this process's memory: exact for one instance.
pub struct LocalMarkers {
    recent: Cache<UserId, ()>,
}

impl LocalMarkers {
    /// Markers that expire after `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            recent: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(window)
                .build(),
        }
    }
}

#[async_trait::async_trait]
impl WriteMarkers for LocalMarkers {
    async fn mark(&self, user: UserId) {
        self.recent.insert(user, ()).await;
    }

    async fn is_recent(&self, user: UserId) -> bool {
        self.recent.contains_key(&user)
    }
}

/// Markers in Redis (`SET … PX window`), seen by every instance.
pub struct RedisMarkers {
    redis: RedisClient,
    window: Duration,
    /// This instance's own writes are known without a round trip, even while Redis is down.
    local: LocalMarkers,
}

impl RedisMarkers {
    /// Markers in `redis` that expire after `window`.
    pub fn new(redis: RedisClient, window: Duration) -> Self {
        Self {
            redis,
            window,
            local: LocalMarkers::new(window),
        }
    }

    fn key(&self, user: UserId) -> String {
        self.redis.key(&format!("ryw:{{{user}}}"))
    }
}

#[async_trait::async_trait]
impl WriteMarkers for RedisMarkers {
    async fn mark(&self, user: UserId) {
        self.local.mark(user).await;
        let key = self.key(user);
        let window_ms = self.window.as_millis() as u64;
        let _ = self
            .redis
            .run("ryw_mark", |mut connection| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(window_ms)
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await;
    }

    async fn is_recent(&self, user: UserId) -> bool {
        if self.local.is_recent(user).await {
            return true;
        }
        let key = self.key(user);
        self.redis
            .run("ryw_check", |mut connection| async move {
                redis::cmd("EXISTS")
                    .arg(&key)
                    .query_async::<i64>(&mut connection)
                    .await
            })
            .await
            .map(|exists| exists > 0)
            .unwrap_or(true)
    }
}
