//! Read-your-writes markers: "this [`Subject`]'s data was written at most `window` ago".
//!
//! While a subject's marker is set (a user, a product, the catalog), reads of its data go to
//! the primary, so neither the user nor the cache (which a read fills) can see a replica's
//! older copy. Markers must be seen
//! by every instance — a user may write through instance A and read through B — so with Redis
//! they live there; when Redis cannot answer, a read is treated as recent (primary: always
//! correct, only slower).

use std::time::Duration;

use moka::future::Cache;
use outgrow_domain::UserId;
use outgrow_platform::redis_client::RedisClient;
use uuid::Uuid;

/// Whose data a write changed and a read reads, for read-your-writes routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A user's account and sessions.
    User(UserId),
    /// One product (its cached copy is refilled by a read).
    Product(Uuid),
    /// The catalog as a whole: its listings.
    Catalog,
}

impl Subject {
    /// The UUID that names the subject in a marker's key. Users and products have UUIDv7s of
    /// their own, which never collide; the catalog is the nil UUID. (The keys are the ones
    /// written before subjects were typed, so instances of both versions agree during a
    /// rolling deploy.)
    fn marker_id(self) -> Uuid {
        match self {
            Self::User(user) => user.0,
            Self::Product(product) => product,
            Self::Catalog => Uuid::nil(),
        }
    }
}

/// Where markers live.
#[async_trait::async_trait]
pub trait WriteMarkers: Send + Sync {
    /// Records a write to `subject`'s data now.
    async fn mark(&self, subject: Subject);
    /// Whether `subject`'s data was written within the window (or that cannot be known).
    async fn is_recent(&self, subject: Subject) -> bool;
}

/// Markers in this process's memory: exact for one instance.
pub struct LocalMarkers {
    recent: Cache<Subject, ()>,
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
    async fn mark(&self, subject: Subject) {
        self.recent.insert(subject, ()).await;
    }

    async fn is_recent(&self, subject: Subject) -> bool {
        self.recent.contains_key(&subject)
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

    /// `ryw:{<uuid>}` (see [`Subject::marker_id`]).
    fn key(&self, subject: Subject) -> String {
        self.redis.key(&format!("ryw:{{{}}}", subject.marker_id()))
    }
}

#[async_trait::async_trait]
impl WriteMarkers for RedisMarkers {
    async fn mark(&self, subject: Subject) {
        self.local.mark(subject).await;
        let key = self.key(subject);
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

    async fn is_recent(&self, subject: Subject) -> bool {
        if self.local.is_recent(subject).await {
            return true;
        }
        let key = self.key(subject);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn marker_keys_keep_the_format_running_instances_use() {
        let redis = RedisClient::new("redis://127.0.0.1:1", "outgrow:", Duration::from_millis(50))
            .expect("lazy client");
        let markers = RedisMarkers::new(redis, Duration::from_secs(5));
        let id = Uuid::now_v7();
        assert_eq!(
            markers.key(Subject::User(UserId(id))),
            format!("outgrow:ryw:{{{id}}}")
        );
        assert_eq!(markers.key(Subject::Product(id)), format!("outgrow:ryw:{{{id}}}"));
        assert_eq!(
            markers.key(Subject::Catalog),
            format!("outgrow:ryw:{{{}}}", Uuid::nil())
        );
    }

    #[tokio::test]
    async fn a_write_marks_only_its_own_subject() {
        let markers = LocalMarkers::new(Duration::from_secs(5));
        markers.mark(Subject::Catalog).await;
        assert!(markers.is_recent(Subject::Catalog).await);
        assert!(!markers.is_recent(Subject::Product(Uuid::now_v7())).await);
    }
}
