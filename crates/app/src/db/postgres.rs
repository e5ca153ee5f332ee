//! PostgreSQL: one primary for writes, streaming replicas for reads, routed per query.
//!
//! Routing rules, in order:
//! 1. writes, transactions and reads that must be current (login, session checks) → primary;
//! 2. a read of a subject's data (a user's, a product, the catalog) within
//!    `read_your_writes_window` after a write to it → primary
//!    (the marker lives in Redis when configured, so this holds across instances);
//! 3. other reads → the next healthy replica, round robin;
//! 4. no healthy replica → primary.
//!
//! A replica is unhealthy when a query on it fails (the query is retried on the primary at
//! once) or when the prober finds it unreachable or lagging beyond `replica_max_lag`; the prober
//! re-checks every `replica_probe_interval` and returns it to rotation when it has caught up.

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use outgrow_platform::{config::Settings, shutdown::ShutdownSignal};
use secrecy::ExposeSecret;
use sqlx::{
    PgPool, Postgres,
    pool::PoolConnection,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::markers::{Subject, WriteMarkers};

/// A pool and the name it has in metrics.
#[derive(Debug, Clone)]
pub struct NamedPool {
    /// `primary`, `replica-1`, …
    pub name: Arc<str>,
    /// The connections.
    pub pool: PgPool,
    /// `db_read_duration_seconds{pool=name}`, looked up once rather than on every read.
    read_duration: metrics::Histogram,
}

impl NamedPool {
    fn new(name: Arc<str>, pool: PgPool) -> Self {
        let read_duration = metrics::histogram!("db_read_duration_seconds", "pool" => name.to_string());
        Self {
            name,
            pool,
            read_duration,
        }
    }
}

struct Replica {
    pool: NamedPool,
    /// Where it is (host:port/db), for logs and `outgrow check`; never credentials.
    location: String,
    healthy: AtomicBool,
}

/// The primary, the replicas and the routing state; cheap to clone.
#[derive(Clone)]
pub struct PgDatabase {
    primary: NamedPool,
    primary_location: String,
    replicas: Arc<[Replica]>,
    next_replica: Arc<AtomicUsize>,
    markers: Arc<dyn WriteMarkers>,
    max_lag: Duration,
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase")
            .field("primary", &self.primary_location)
            .finish_non_exhaustive()
    }
}

/// Host, port and database of a URL, without user or password.
fn location(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

pub(crate) fn pool_for(url: &str, settings: &Settings, key: &str) -> anyhow::Result<(PgPool, String)> {
    let mut options = PgConnectOptions::from_str(url)
        .with_context(|| format!("{key} is not a valid postgres:// URL"))?
        .application_name("outgrow");
    if !settings.database_statement_timeout.is_zero() {
        let millis = settings.database_statement_timeout.as_millis().to_string();
        options = options.options([("statement_timeout", millis.as_str())]);
    }
    let location = location(&options);
    let pool = PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(settings.database_acquire_timeout)
        .idle_timeout(settings.database_idle_timeout)
        .connect_lazy_with(options);
    Ok((pool, location))
}

impl PgDatabase {
    /// Pools for the primary and every replica (connected lazily).
    pub fn new(
        primary_url: &str,
        settings: &Settings,
        markers: Arc<dyn WriteMarkers>,
    ) -> anyhow::Result<Self> {
        let (primary, primary_location) =
            pool_for(primary_url, settings, "database_url (OUTGROW_DATABASE_URL)")?;
        let replicas = settings
            .database_replica_urls
            .iter()
            .enumerate()
            .map(|(index, url)| {
                let (pool, location) = pool_for(
                    url.expose_secret(),
                    settings,
                    "database_replica_urls (OUTGROW_DATABASE_REPLICA_URLS)",
                )?;
                let name: Arc<str> = Arc::from(format!("replica-{}", index + 1));
                metrics::gauge!("db_replica_healthy", "replica" => name.to_string()).set(1.0);
                Ok(Replica {
                    pool: NamedPool::new(name, pool),
                    location,
                    healthy: AtomicBool::new(true),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            primary: NamedPool::new(Arc::from("primary"), primary),
            primary_location,
            replicas: replicas.into(),
            next_replica: Arc::new(AtomicUsize::new(0)),
            markers,
            max_lag: settings.replica_max_lag,
        })
    }

    /// The primary.
    pub fn primary(&self) -> &PgPool {
        &self.primary.pool
    }

    /// Every pool with its name (primary first).
    pub fn pools(&self) -> impl Iterator<Item = &NamedPool> {
        std::iter::once(&self.primary).chain(self.replicas.iter().map(|replica| &replica.pool))
    }

    /// What logs and `outgrow check` show.
    pub fn describe(&self) -> String {
        let replicas: Vec<&str> = self
            .replicas
            .iter()
            .map(|replica| replica.location.as_str())
            .collect();
        format!(
            "postgres (primary {}; replicas [{}])",
            self.primary_location,
            replicas.join(", ")
        )
    }

    /// A connection for a write (or a read that must be current), counted in metrics.
    pub async fn write(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        acquire(&self.primary).await
    }

    /// Records a write to `subject`'s data for read-your-writes.
    pub async fn wrote(&self, subject: Subject) {
        self.markers.mark(subject).await;
    }

    /// Runs a read of `subject`'s data (or of no one subject's, `None`) where the routing rules
    /// say; a failure on a replica marks it unhealthy and the read is retried on the primary.
    pub async fn read<T, F, Fut>(&self, subject: Option<Subject>, query: F) -> Result<T, sqlx::Error>
    where
        F: Fn(PoolConnection<Postgres>) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let recent = match subject {
            Some(subject) => self.markers.is_recent(subject).await,
            None => false,
        };
        let replica = if recent { None } else { self.next_healthy_replica() };
        if let Some(replica) = replica {
            let started = Instant::now();
            let outcome = match acquire(&replica.pool).await {
                Ok(connection) => query(connection).await,
                Err(error) => Err(error),
            };
            observe_read(&replica.pool, started);
            match outcome {
                Ok(value) => return Ok(value),
                Err(error) => {
                    replica.healthy.store(false, Ordering::Relaxed);
                    metrics::gauge!("db_replica_healthy", "replica" => replica.pool.name.to_string())
                        .set(0.0);
                    metrics::counter!("db_replica_failovers_total", "replica" => replica.pool.name.to_string())
                        .increment(1);
                    tracing::warn!(replica = %replica.location, %error, "replica read failed; retrying on the primary");
                }
            }
        } else if recent {
            metrics::counter!("db_read_your_writes_total").increment(1);
        }
        let started = Instant::now();
        let outcome = match acquire(&self.primary).await {
            Ok(connection) => query(connection).await,
            Err(error) => Err(error),
        };
        observe_read(&self.primary, started);
        outcome
    }

    fn next_healthy_replica(&self) -> Option<&Replica> {
        let count = self.replicas.len();
        let start = self.next_replica.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| &self.replicas[(start + offset) % count])
            .find(|replica| replica.healthy.load(Ordering::Relaxed))
    }

    /// Probes every replica each `interval` until `stop`: reachability and replay lag.
    pub async fn run_replica_prober(self, interval: Duration, stop: ShutdownSignal) {
        if self.replicas.is_empty() {
            return;
        }
        let stopped = stop.stopped();
        tokio::pin!(stopped);
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stopped => return,
            }
            // The primary's WAL position tells "behind" from "idle": a replica that has
            // replayed everything the primary wrote has no lag, however old its last
            // transaction is.
            let primary_lsn = tokio::time::timeout(
                interval.max(Duration::from_millis(500)),
                sqlx::query_scalar::<_, String>("SELECT pg_current_wal_lsn()::text")
                    .fetch_one(self.primary()),
            )
            .await
            .ok()
            .and_then(Result::ok);
            for replica in self.replicas.iter() {
                self.probe(replica, primary_lsn.as_deref(), interval).await;
            }
            self.export_pool_gauges();
        }
    }

    async fn probe(&self, replica: &Replica, primary_lsn: Option<&str>, timeout: Duration) {
        let name = replica.pool.name.to_string();
        // Caught up: nothing to replay → no lag. Behind: the age of the last replayed
        // transaction (an upper bound, so a lagging replica is never thought current).
        let lag_query = sqlx::query_scalar::<_, f64>(
            "SELECT CASE
                 WHEN pg_last_wal_replay_lsn() >= COALESCE($1::pg_lsn, pg_last_wal_receive_lsn()) THEN 0
                 ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
             END::float8",
        )
        .bind(primary_lsn)
        .fetch_one(&replica.pool.pool);
        let lag = tokio::time::timeout(timeout.max(Duration::from_millis(500)), lag_query).await;
        let healthy = match lag {
            Ok(Ok(seconds)) => {
                metrics::gauge!("db_replica_lag_seconds", "replica" => name.clone()).set(seconds);
                seconds <= self.max_lag.as_secs_f64()
            }
            Ok(Err(_)) | Err(_) => false,
        };
        let was = replica.healthy.swap(healthy, Ordering::Relaxed);
        if was != healthy {
            if healthy {
                tracing::info!(replica = %replica.location, "replica back in rotation");
            } else {
                tracing::warn!(replica = %replica.location, ?lag, "replica out of rotation (unreachable or lagging)");
            }
        }
        metrics::gauge!("db_replica_healthy", "replica" => name).set(if healthy { 1.0 } else { 0.0 });
    }

    /// Pool occupancy gauges (also refreshed by the prober).
    pub fn export_pool_gauges(&self) {
        for named in self.pools() {
            let size = named.pool.size() as f64;
            let idle = named.pool.num_idle() as f64;
            let name = named.name.to_string();
            metrics::gauge!("db_pool_connections", "pool" => name.clone(), "state" => "idle").set(idle);
            metrics::gauge!("db_pool_connections", "pool" => name, "state" => "in_use").set(size - idle);
        }
    }

    /// One round trip on every pool, within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> anyhow::Result<()> {
        for named in self.pools() {
            tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&named.pool))
                .await
                .with_context(|| format!("the {} did not answer within {timeout:?}", named.name))?
                .with_context(|| format!("the {} failed", named.name))?;
        }
        Ok(())
    }

    /// Readiness needs the primary only: replicas are optional by design.
    pub async fn ping_primary(&self, timeout: Duration) -> anyhow::Result<()> {
        tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(&self.primary.pool))
            .await
            .context("the primary did not answer in time")?
            .context("the primary failed")?;
        Ok(())
    }

    /// Closes every pool.
    pub async fn close(&self) {
        for named in self.pools() {
            named.pool.close().await;
        }
    }
}

/// `db_read_duration_seconds{pool}`: one routed read, acquire included.
fn observe_read(named: &NamedPool, started: Instant) {
    named.read_duration.record(started.elapsed().as_secs_f64());
}

/// Acquires a connection, exporting how many requests wait for one and for how long.
async fn acquire(named: &NamedPool) -> Result<PoolConnection<Postgres>, sqlx::Error> {
    struct Waiting(metrics::Gauge);
    impl Drop for Waiting {
        fn drop(&mut self) {
            self.0.decrement(1.0);
        }
    }
    let name = named.name.to_string();
    let gauge = metrics::gauge!("db_pool_waiting", "pool" => name.clone());
    gauge.increment(1.0);
    let waiting = Waiting(gauge);
    let started = Instant::now();
    let connection = named.pool.acquire().await;
    drop(waiting);
    metrics::histogram!("db_pool_acquire_seconds", "pool" => name.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("db_queries_total", "pool" => name).increment(1);
    connection
}
