//! The SQL database: connection pools, migrations, and the repositories built on them.
//!
//! Reads and writes go through separate pools even on SQLite. SQLite allows one writer at a
//! time; a dedicated single-connection writer pool queues writers in the application (fair,
//! bounded by the acquire timeout) instead of letting them collide on `SQLITE_BUSY`, while
//! readers proceed in parallel under WAL. The same read/write split is what the PostgreSQL
//! backend routes to the primary and the replicas ([`postgres`]); [`route`] is where a
//! statement's routing class picks the pool on either backend. [`accounts`] holds the users,
//! [`sessions`] the SQL sessions, [`markers`] the read-your-writes markers and
//! [`redis_sessions`] the Redis session store of the scaled mode.

pub mod accounts;
pub mod markers;
pub mod media;
pub mod postgres;
pub mod redis_sessions;
pub mod route;
pub mod session_cache;
pub mod sessions;
pub mod shards;
pub mod sql;

use std::{str::FromStr, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use outgrow_platform::config::Settings;
use secrecy::ExposeSecret;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use self::{markers::WriteMarkers, postgres::PgDatabase};
use crate::repo::{SessionStore, UserRepository};

/// The configured database, with one variant per backend.
#[derive(Debug, Clone)]
pub enum Database {
    /// The embedded default: one SQLite file in WAL mode.
    Sqlite(SqliteDatabase),
    /// PostgreSQL: a primary and its read replicas.
    Postgres(PgDatabase),
}

/// SQLite's writer and reader pools over one file.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    writer: SqlitePool,
    reader: SqlitePool,
    path: String,
}

impl Database {
    /// Opens the database named by the settings (creating the SQLite file and its directory
    /// if needed). Connections are opened lazily, so this succeeds even when a server is down;
    /// [`Database::ping`] tells whether it is reachable. `markers` record writes for
    /// read-your-writes routing (PostgreSQL with replicas).
    pub async fn connect(settings: &Settings, markers: Arc<dyn WriteMarkers>) -> anyhow::Result<Self> {
        let url = match &settings.database_url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!("sqlite://{}", settings.sqlite_path().display()),
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(PgDatabase::new(&url, settings, markers)?));
        }
        let Some(path) = url.strip_prefix("sqlite://") else {
            bail!("database_url (OUTGROW_DATABASE_URL) must start with sqlite:// or postgres://");
        };
        if let Some(parent) = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the database directory {}", parent.display()))?;
        }
        let options = SqliteConnectOptions::from_str(&url)
            .context("database_url (OUTGROW_DATABASE_URL) is not a valid SQLite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode; only an OS crash can
            // lose the last transactions, which is SQLite's recommended trade-off for WAL.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let acquire = settings.database_acquire_timeout;
        // The one writer connection gets a 64 MiB page cache (SQLite's default is 2 MiB): inserts
        // into time-ordered and hashed keys touch pages all over large B-trees.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire)
            .connect_lazy_with(options.clone().pragma("cache_size", "-65536"));
        let reader = SqlitePoolOptions::new()
            .max_connections(settings.database_max_connections)
            .acquire_timeout(acquire)
            .idle_timeout(settings.database_idle_timeout)
            .connect_lazy_with(options.read_only(true));
        Ok(Self::Sqlite(SqliteDatabase {
            writer,
            reader,
            path: path.to_owned(),
        }))
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        match self {
            Self::Sqlite(db) => {
                let migrator = sqlx::migrate!("./migrations/sqlite");
                let applied_before = applied_count(&db.writer).await;
                migrator
                    .run(&db.writer)
                    .await
                    .context("applying SQLite migrations")?;
                Ok(migrator.iter().count().saturating_sub(applied_before))
            }
            Self::Postgres(db) => {
                let migrator = sqlx::migrate!("./migrations/postgres");
                let applied_before =
                    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
                        .fetch_one(db.primary())
                        .await
                        .map_or(0, |count| usize::try_from(count).unwrap_or(0));
                // sqlx holds an advisory lock while migrating: instances starting together
                // migrate once.
                migrator
                    .run(db.primary())
                    .await
                    .context("applying PostgreSQL migrations to the primary")?;
                Ok(migrator.iter().count().saturating_sub(applied_before))
            }
        }
    }

    /// [`Database::connect`] for one-off commands (CLI): read-your-writes markers go to Redis
    /// when it is configured, so a write made here is routed correctly by the servers too.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let markers: Arc<dyn WriteMarkers> =
            match outgrow_platform::redis_client::RedisClient::from_settings(settings)? {
                Some(redis) => Arc::new(markers::RedisMarkers::new(
                    redis,
                    settings.read_your_writes_window,
                )),
                None => Arc::new(markers::LocalMarkers::new(settings.read_your_writes_window)),
            };
        Self::connect(settings, markers).await
    }

    /// One round trip on each pool, within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(db) => {
                for (name, pool) in [("writer", &db.writer), ("reader", &db.reader)] {
                    tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(pool))
                        .await
                        .with_context(|| format!("the SQLite {name} pool did not answer within {timeout:?}"))?
                        .with_context(|| format!("the SQLite {name} pool failed"))?;
                }
                Ok(())
            }
            Self::Postgres(db) => db.ping(timeout).await,
        }
    }

    /// Whether the database can serve: for PostgreSQL the primary alone (replicas are skipped
    /// when down), for SQLite both pools.
    pub async fn ready(&self, timeout: Duration) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(_) => self.ping(timeout).await,
            Self::Postgres(db) => db.ping_primary(timeout).await,
        }
    }

    /// Sets `db_pool_connections{pool,state}` for every pool.
    pub fn export_pool_gauges(&self) {
        match self {
            Self::Sqlite(db) => {
                for (name, pool) in [("sqlite-writer", &db.writer), ("sqlite-reader", &db.reader)] {
                    let (size, idle) = (pool.size() as f64, pool.num_idle() as f64);
                    metrics::gauge!("db_pool_connections", "pool" => name, "state" => "idle").set(idle);
                    metrics::gauge!("db_pool_connections", "pool" => name, "state" => "in_use")
                        .set(size - idle);
                }
            }
            Self::Postgres(db) => db.export_pool_gauges(),
        }
    }

    /// Records a write to `subject` (a user, a product, the catalog) for read-your-writes: its
    /// reads go to the primary for `read_your_writes_window` (PostgreSQL with replicas).
    pub async fn wrote(&self, subject: markers::Subject) {
        if let Self::Postgres(db) = self {
            db.wrote(subject).await;
        }
    }

    /// The pool where writes go: SQLite's writer, PostgreSQL's primary.
    pub fn primary_pool(&self) -> sql::SqlPool {
        match self {
            Self::Sqlite(db) => sql::SqlPool::Sqlite(db.writer.clone()),
            Self::Postgres(db) => sql::SqlPool::Postgres(db.primary().clone()),
        }
    }

    /// The primary pool's name in `db_pool_connections` and its most connections: what the
    /// operations dashboard's pool usage is a share of.
    pub fn primary_pool_capacity(&self) -> (&'static str, u32) {
        match self {
            Self::Sqlite(db) => ("sqlite-writer", db.writer.options().get_max_connections()),
            Self::Postgres(db) => ("primary", db.primary().options().get_max_connections()),
        }
    }

    /// Upload and export rows on this database.
    pub fn media(&self) -> media::MediaStore {
        media::MediaStore::new(self.primary_pool())
    }

    /// The job queue on this database (SQLite: the writer pool; PostgreSQL: the primary).
    pub fn jobs(&self) -> outgrow_platform::jobs::JobStore {
        self.primary_pool()
    }

    /// What the start-up log and `outgrow check` show (never credentials).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(db) => format!("sqlite ({})", db.path),
            Self::Postgres(db) => db.describe(),
        }
    }

    /// The user repository on this backend.
    pub fn users(&self) -> Arc<dyn UserRepository> {
        Arc::new(accounts::SqlUsers::new(self.clone()))
    }

    /// The SQL session store on this backend.
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        Arc::new(sessions::SqlSessions::new(self.clone()))
    }

    /// Waits for checked-out connections to return and closes every pool.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(db) => {
                db.reader.close().await;
                db.writer.close().await;
            }
            Self::Postgres(db) => db.close().await,
        }
    }
}

impl SqliteDatabase {
    /// The read-only pool (many connections under WAL).
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// The one-connection pool every write goes through.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

/// Migrations already recorded; zero before the first run (the table does not exist yet).
async fn applied_count(pool: &SqlitePool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map(|count| usize::try_from(count).unwrap_or(0))
        .unwrap_or(0)
}
