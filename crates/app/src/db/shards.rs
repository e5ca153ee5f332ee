//! The shard databases of orders and events, and the map that routes a user to one.
//!
//! A user's bucket is fixed ([`bucket_of`] their id); the bucket's shard comes from the
//! `shard_buckets` table on the primary, which every instance reads at start-up and re-reads
//! every `shard_map_refresh`. With no `database_shard_urls` the primary (or the SQLite file) is
//! the only shard: one code path for one database and for twenty. See docs/sharding.md.

use outgrow_platform::statements;
use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use outgrow_domain::UserId;
use outgrow_platform::{
    config::Settings,
    shard::{BUCKETS, ShardMap, bucket_of},
    shutdown::ShutdownSignal,
};
use secrecy::ExposeSecret;

use super::{
    Database,
    sql::{SqlPool, with_pool},
};
use crate::repo::StoreError;

statements! {
    /// The whole map, in bucket order (start-up, then every `shard_map_refresh`).
    MAP_READ("shards.map_read") = "SELECT bucket, shard, moving FROM shard_buckets ORDER BY bucket";
    /// One bucket of the first map (concurrent instances insert the same rows).
    MAP_STORE("shards.map_store") =
        "INSERT INTO shard_buckets (bucket, shard, moving) VALUES ($1, $2, $3) \
         ON CONFLICT (bucket) DO NOTHING";
    /// Marks a bucket as moving, or not.
    MAP_SET_MOVING("shards.set_moving") = "UPDATE shard_buckets SET moving = $2 WHERE bucket = $1";
    /// Gives a bucket to a shard and ends its move.
    MAP_ASSIGN("shards.assign") = "UPDATE shard_buckets SET shard = $2, moving = false WHERE bucket = $1";
}

/// One shard database.
#[derive(Debug, Clone)]
pub struct Shard {
    /// Its position in `database_shard_urls` (0 when the primary is the only shard).
    pub index: u16,
    /// `shard-0`, `shard-1`, … (metrics and logs).
    pub name: String,
    /// Where it is (host:port/db or the SQLite path), never credentials.
    pub location: String,
    /// Writes (and reads that must be current).
    pub pool: SqlPool,
    /// Reads: the same pool on PostgreSQL, the reader pool on SQLite.
    pub read_pool: SqlPool,
}

/// Where a user's orders and events live.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// The user's bucket (0..1024).
    pub bucket: u16,
    /// The shard that owns it now.
    pub shard: &'a Shard,
    /// The bucket is being moved, or the stored map has not been read yet: writes must wait
    /// (503 + Retry-After).
    pub moving: bool,
}

/// The shards and the current map; cheap to clone.
#[derive(Clone)]
pub struct Shards {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where the map lives.
    primary: SqlPool,
    shards: Vec<Shard>,
    map: RwLock<Arc<ShardMap>>,
    /// The stored map has been read (until then only the round-robin guess is known, and
    /// nothing may be written by it).
    loaded: AtomicBool,
    /// Separate databases (PostgreSQL with `database_shard_urls`): they need migrating.
    separate: bool,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

impl Shards {
    /// Pools for every configured shard (lazily connected); the map starts as the round-robin
    /// spread until [`Shards::load_map`] reads the stored one.
    pub fn new(db: &Database, settings: &Settings) -> anyhow::Result<Self> {
        let (primary, shards, separate) = match db {
            Database::Sqlite(sqlite) => {
                let shard = Shard {
                    index: 0,
                    name: "shard-0".into(),
                    location: sqlite.path.clone(),
                    pool: SqlPool::Sqlite(sqlite.writer.clone()),
                    read_pool: SqlPool::Sqlite(sqlite.reader.clone()),
                };
                (SqlPool::Sqlite(sqlite.writer.clone()), vec![shard], false)
            }
            Database::Postgres(pg) => {
                let primary = SqlPool::Postgres(pg.primary().clone());
                if settings.database_shard_urls.is_empty() {
                    let shard = Shard {
                        index: 0,
                        name: "shard-0".into(),
                        location: "the primary".into(),
                        pool: primary.clone(),
                        read_pool: primary.clone(),
                    };
                    (primary, vec![shard], false)
                } else {
                    let shards = settings
                        .database_shard_urls
                        .iter()
                        .enumerate()
                        .map(|(index, url)| {
                            let (pool, location) = super::postgres::pool_for(
                                url.expose_secret(),
                                settings,
                                "database_shard_urls (OUTGROW_DATABASE_SHARD_URLS)",
                            )?;
                            let index = u16::try_from(index).context("too many shards")?;
                            Ok(Shard {
                                index,
                                name: format!("shard-{index}"),
                                location,
                                pool: SqlPool::Postgres(pool.clone()),
                                read_pool: SqlPool::Postgres(pool),
                            })
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    (primary, shards, true)
                }
            }
        };
        let spread = ShardMap::spread(shards.len() as u16);
        Ok(Self {
            inner: Arc::new(Inner {
                primary,
                map: RwLock::new(Arc::new(spread)),
                loaded: AtomicBool::new(false),
                shards,
                separate,
            }),
        })
    }

    /// Every shard.
    pub fn all(&self) -> &[Shard] {
        &self.inner.shards
    }

    /// The shard at `index`.
    pub fn get(&self, index: u16) -> Option<&Shard> {
        self.inner.shards.get(usize::from(index))
    }

    /// The current map.
    pub fn map(&self) -> Arc<ShardMap> {
        self.inner
            .map
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Where `user`'s data lives now.
    pub fn route(&self, user: UserId) -> Route<'_> {
        let bucket = bucket_of(&user.0);
        let map = self.map();
        let index = map.shard_of(bucket);
        Route {
            bucket,
            // `load_map` refuses maps naming shards that are not configured.
            shard: &self.inner.shards[usize::from(index)],
            moving: map.is_moving(bucket) || !self.is_loaded(),
        }
    }

    /// Whether the stored map has been read.
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// What the start-up log and `outgrow check` show.
    pub fn describe(&self) -> String {
        let counts = self.map().bucket_counts(self.inner.shards.len() as u16);
        let shards: Vec<String> = self
            .inner
            .shards
            .iter()
            .zip(counts)
            .map(|(shard, buckets)| format!("{} ({}, {buckets} buckets)", shard.name, shard.location))
            .collect();
        shards.join(", ")
    }

    /// Applies the migrations to every separate shard database; returns how many were applied
    /// in total. (The primary is migrated by [`Database::migrate`].)
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        if !self.inner.separate {
            return Ok(0);
        }
        let mut applied = 0;
        for shard in &self.inner.shards {
            if let SqlPool::Postgres(pool) = &shard.pool {
                let migrator = sqlx::migrate!("./migrations/postgres");
                let before =
                    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
                        .fetch_one(pool)
                        .await
                        .map_or(0, |count| usize::try_from(count).unwrap_or(0));
                migrator
                    .run(pool)
                    .await
                    .with_context(|| format!("applying migrations to {} ({})", shard.name, shard.location))?;
                applied += migrator.iter().count().saturating_sub(before);
            }
        }
        Ok(applied)
    }

    /// Reads the stored map, creating it (the round-robin spread over the configured shards)
    /// when the table is empty. A map naming a shard that is not configured is an error: the
    /// data of its buckets would be unreachable.
    pub async fn load_map(&self) -> anyhow::Result<()> {
        let count = self.inner.shards.len() as u16;
        let mut rows = self.read_rows().await?;
        if rows.is_empty() {
            let spread = ShardMap::spread(count);
            self.store_rows(&spread).await?;
            rows = self.read_rows().await?;
        }
        let map = ShardMap::from_rows(rows, count).map_err(|problem| {
            anyhow::anyhow!("the shard map (table shard_buckets) is invalid: {problem}")
        })?;
        *self
            .inner
            .map
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(map);
        self.inner.loaded.store(true, Ordering::Release);
        Ok(())
    }

    async fn read_rows(&self) -> Result<Vec<(u16, u16, bool)>, StoreError> {
        let rows: Vec<(i32, i32, bool)> = with_pool!(&self.inner.primary, |pool, sql| {
            sqlx::query_as(sql(MAP_READ)).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(bucket, shard, moving)| {
                let bucket =
                    u16::try_from(bucket).map_err(|_| StoreError::Corrupt(format!("bucket {bucket}")))?;
                let shard =
                    u16::try_from(shard).map_err(|_| StoreError::Corrupt(format!("shard {shard}")))?;
                Ok((bucket, shard, moving))
            })
            .collect()
    }

    /// Writes the whole map (first use only: concurrent instances insert the same rows).
    async fn store_rows(&self, map: &ShardMap) -> Result<(), StoreError> {
        with_pool!(&self.inner.primary, |pool, sql| {
            let mut tx = pool.begin().await?;
            for (bucket, shard, moving) in map.rows() {
                sqlx::query(sql(MAP_STORE))
                    .bind(i32::from(bucket))
                    .bind(i32::from(shard))
                    .bind(moving)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Marks `bucket` as moving (or not); instances see it within `shard_map_refresh`.
    pub async fn set_moving(&self, bucket: u16, moving: bool) -> Result<(), StoreError> {
        self.update_bucket(BucketChange::Moving(moving), bucket).await
    }

    /// Gives `bucket` to `shard` and ends its move.
    pub async fn assign(&self, bucket: u16, shard: u16) -> Result<(), StoreError> {
        self.update_bucket(BucketChange::Shard(shard), bucket).await
    }

    /// Runs the update of one bucket's row (`$1` the bucket, `$2` the new value).
    async fn update_bucket(&self, change: BucketChange, bucket: u16) -> Result<(), StoreError> {
        with_pool!(&self.inner.primary, |pool, sql| {
            let query = match change {
                BucketChange::Moving(moving) => sqlx::query(sql(MAP_SET_MOVING))
                    .bind(i32::from(bucket))
                    .bind(moving),
                BucketChange::Shard(shard) => sqlx::query(sql(MAP_ASSIGN))
                    .bind(i32::from(bucket))
                    .bind(i32::from(shard)),
            };
            query.execute(pool).await?;
        });
        Ok(())
    }

    /// Re-reads the map every `interval` until `stop` (a failed read keeps the last map).
    pub async fn run_refresher(self, interval: Duration, stop: ShutdownSignal) {
        let stopped = stop.stopped();
        tokio::pin!(stopped);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(error) = self.load_map().await {
                        tracing::warn!(error = format!("{error:#}"), "could not refresh the shard map; keeping the last one");
                    }
                }
                _ = &mut stopped => return,
            }
        }
    }

    /// Closes the separate shard pools.
    pub async fn close(&self) {
        if self.inner.separate {
            for shard in &self.inner.shards {
                if let SqlPool::Postgres(pool) = &shard.pool {
                    pool.close().await;
                }
            }
        }
    }
}

/// What an update of a bucket's row changes.
#[derive(Debug, Clone, Copy)]
enum BucketChange {
    /// Whether it is moving.
    Moving(bool),
    /// Its shard (which ends the move).
    Shard(u16),
}

/// The number of virtual buckets, for messages.
pub const BUCKET_COUNT: u16 = BUCKETS;
