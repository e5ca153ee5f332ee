//! The queue's storage: one table (`jobs`) and one for recurring schedules
//! (`recurring_jobs`), on SQLite or PostgreSQL. The application owns the migrations.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row, SqlitePool, types::Json};
use uuid::Uuid;

use super::{JobRecord, JobState, NewJob};

/// The notification channel workers listen on (PostgreSQL).
pub const NOTIFY_CHANNEL: &str = "outgrow_jobs";

/// The queue's database.
#[derive(Debug, Clone)]
pub enum JobStore {
    /// SQLite (the writer pool: every queue operation writes).
    Sqlite(SqlitePool),
    /// PostgreSQL (the primary).
    Postgres(PgPool),
}

/// A claimed job, as the runner needs it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub queue: String,
    pub name: String,
    pub payload: serde_json::Value,
    /// This run's number (1-based): the fence for completing or failing it.
    pub attempt: i32,
    pub max_attempts: i32,
}

/// Where a worker's last claim ended, in claim order (priority first, then age, then id), so
/// that the next claim starts there instead of at the head of the ready jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCursor {
    priority: i16,
    run_at: DateTime<Utc>,
    id: Uuid,
}

impl ClaimCursor {
    /// The claim-order key (higher priority first).
    fn key(&self) -> (i32, DateTime<Utc>, Uuid) {
        (-i32::from(self.priority), self.run_at, self.id)
    }
}

/// What `jobs list` selects.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// Depth and age per queue, for metrics and operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Jobs due or waiting.
    pub ready: i64,
    /// Jobs running.
    pub running: i64,
    /// Dead jobs (kept until retried).
    pub dead: i64,
    /// Seconds since the oldest due job became due (0 when none).
    pub oldest_ready_seconds: f64,
}

const RECORD_COLUMNS: &str = "id, queue, name, payload, priority, state, attempts, max_attempts, interruptions, \
     run_at, locked_until, locked_by, last_error, dedup_key, created_at, finished_at";

macro_rules! record_from_row {
    ($name:ident, $row:ty) => {
        fn $name(row: &$row) -> Result<JobRecord, sqlx::Error> {
            let state: String = row.try_get("state")?;
            let Json(payload): Json<serde_json::Value> = row.try_get("payload")?;
            Ok(JobRecord {
                id: row.try_get("id")?,
                queue: row.try_get("queue")?,
                name: row.try_get("name")?,
                payload,
                priority: row.try_get("priority")?,
                state: JobState::parse(&state)
                    .ok_or_else(|| sqlx::Error::Decode(format!("job state {state:?}").into()))?,
                attempts: row.try_get("attempts")?,
                max_attempts: row.try_get("max_attempts")?,
                interruptions: row.try_get("interruptions")?,
                run_at: row.try_get("run_at")?,
                locked_until: row.try_get("locked_until")?,
                locked_by: row.try_get("locked_by")?,
                last_error: row.try_get("last_error")?,
                dedup_key: row.try_get("dedup_key")?,
                created_at: row.try_get("created_at")?,
                finished_at: row.try_get("finished_at")?,
            })
        }
    };
}
record_from_row!(sqlite_record, sqlx::sqlite::SqliteRow);
record_from_row!(pg_record, sqlx::postgres::PgRow);

/// One row of the per-queue statistics query (same columns on both backends).
macro_rules! stats_from_row {
    ($row:expr, $now:expr) => {{
        let oldest: Option<DateTime<Utc>> = $row.try_get("oldest")?;
        Ok(QueueStats {
            queue: $row.try_get("queue")?,
            ready: $row.try_get("ready")?,
            running: $row.try_get("running")?,
            dead: $row.try_get("dead")?,
            oldest_ready_seconds: oldest.map_or(0.0, |at| ($now - at).as_seconds_f64().max(0.0)),
        })
    }};
}

macro_rules! claimed_from_row {
    ($name:ident, $row:ty) => {
        fn $name(row: &$row) -> Result<Claimed, sqlx::Error> {
            let Json(payload): Json<serde_json::Value> = row.try_get("payload")?;
            Ok(Claimed {
                id: row.try_get("id")?,
                queue: row.try_get("queue")?,
                name: row.try_get("name")?,
                payload,
                attempt: row.try_get("attempts")?,
                max_attempts: row.try_get("max_attempts")?,
            })
        }
    };
}
claimed_from_row!(sqlite_claimed, sqlx::sqlite::SqliteRow);
claimed_from_row!(pg_claimed, sqlx::postgres::PgRow);

const INSERT_SQLITE: &str = "INSERT INTO jobs (id, queue, name, payload, priority, state, attempts, max_attempts, \
     interruptions, run_at, dedup_key, created_at) VALUES (?, ?, ?, ?, ?, 'ready', 0, ?, 0, ?, ?, ?) \
     ON CONFLICT DO NOTHING";
const INSERT_POSTGRES: &str = "INSERT INTO jobs (id, queue, name, payload, priority, state, attempts, max_attempts, \
     interruptions, run_at, dedup_key, created_at) VALUES ($1, $2, $3, $4, $5, 'ready', 0, $6, 0, $7, $8, $9) \
     ON CONFLICT DO NOTHING";

/// Enqueues `job` on SQLite through `connection` — pass a transaction to enqueue atomically
/// with the data the job follows. Returns false when a job with the same dedup key is pending.
pub async fn enqueue_sqlite(
    connection: &mut sqlx::SqliteConnection,
    job: &NewJob,
) -> Result<bool, sqlx::Error> {
    let now = Utc::now();
    let result = sqlx::query(INSERT_SQLITE)
        .bind(job.id)
        .bind(&job.queue)
        .bind(&job.name)
        .bind(Json(&job.payload))
        .bind(job.priority)
        .bind(job.max_attempts)
        .bind(job.run_at.unwrap_or(now))
        .bind(&job.dedup_key)
        .bind(now)
        .execute(connection)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Enqueues `job` on PostgreSQL through `connection` (a transaction, to enqueue atomically with
/// the data the job follows) and notifies workers when the transaction commits.
pub async fn enqueue_postgres(
    connection: &mut sqlx::PgConnection,
    job: &NewJob,
) -> Result<bool, sqlx::Error> {
    let now = Utc::now();
    let result = sqlx::query(INSERT_POSTGRES)
        .bind(job.id)
        .bind(&job.queue)
        .bind(&job.name)
        .bind(Json(&job.payload))
        .bind(job.priority)
        .bind(job.max_attempts)
        .bind(job.run_at.unwrap_or(now))
        .bind(&job.dedup_key)
        .bind(now)
        .execute(&mut *connection)
        .await?;
    // Delivered at commit, to every listening worker; a lost one is covered by polling.
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(&job.queue)
        .execute(&mut *connection)
        .await?;
    Ok(result.rows_affected() == 1)
}

impl JobStore {
    /// Enqueues `job` on its own (not tied to other data).
    pub async fn enqueue(&self, job: &NewJob) -> Result<bool, sqlx::Error> {
        let inserted = match self {
            Self::Sqlite(pool) => enqueue_sqlite(&mut *pool.acquire().await?, job).await?,
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let inserted = enqueue_postgres(&mut tx, job).await?;
                tx.commit().await?;
                inserted
            }
        };
        Ok(inserted)
    }

    /// Returns expired leases to the queue (or to `dead` when out of attempts), recording an
    /// interruption; returns how many.
    pub async fn reap_expired(&self, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        let sql_sqlite = "UPDATE jobs SET
                 state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'ready' END,
                 finished_at = CASE WHEN attempts >= max_attempts THEN ? ELSE NULL END,
                 interruptions = interruptions + 1,
                 last_error = 'interrupted: the lease of ' || coalesce(locked_by, '?') || ' expired before the run finished',
                 run_at = ?, locked_until = NULL, locked_by = NULL
             WHERE state = 'running' AND locked_until < ?";
        let sql_pg = "UPDATE jobs SET
                 state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'ready' END,
                 finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END,
                 interruptions = interruptions + 1,
                 last_error = 'interrupted: the lease of ' || coalesce(locked_by, '?') || ' expired before the run finished',
                 run_at = $1, locked_until = NULL, locked_by = NULL
             WHERE state = 'running' AND locked_until < $1";
        let result = match self {
            Self::Sqlite(pool) => sqlx::query(sql_sqlite)
                .bind(now)
                .bind(now)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected(),
            Self::Postgres(pool) => sqlx::query(sql_pg).bind(now).execute(pool).await?.rows_affected(),
        };
        Ok(result)
    }

    /// Claims up to `limit` due jobs of `queues` for `worker`, with a lease until `until`, in
    /// claim order (priority, then age) from just after `after` (or from the head of the ready
    /// jobs). Returns them and the position of the last one, for the next claim (PostgreSQL
    /// only: SQLite's single writer has no dead index entries to walk past).
    pub async fn claim(
        &self,
        queues: &[String],
        worker: &str,
        limit: u32,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        after: Option<&ClaimCursor>,
    ) -> Result<(Vec<Claimed>, Option<ClaimCursor>), sqlx::Error> {
        match self {
            Self::Sqlite(pool) => {
                // One writer at a time: the subquery and the update are atomic.
                let queues = serde_json::to_string(queues).unwrap_or_else(|_| "[]".into());
                let rows = sqlx::query(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = ?, locked_by = ?
                     WHERE id IN (SELECT id FROM jobs
                                  WHERE state = 'ready' AND run_at <= ? AND queue IN (SELECT value FROM json_each(?))
                                  ORDER BY priority DESC, run_at LIMIT ?)
                     RETURNING id, queue, name, payload, attempts, max_attempts",
                )
                .bind(until)
                .bind(worker)
                .bind(now)
                .bind(queues)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
                Ok((rows.iter().map(sqlite_claimed).collect::<Result<_, _>>()?, None))
            }
            Self::Postgres(pool) => {
                // `claim_jobs` (migration 0009): UPDATE … WHERE id IN (the first `limit` due ready
                // jobs after the position, FOR UPDATE SKIP LOCKED), its plan pinned to the
                // ordered index walk.
                let rows = sqlx::query(
                    "SELECT id, queue, name, payload, attempts, max_attempts, priority, run_at
                     FROM claim_jobs($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(queues)
                .bind(worker)
                .bind(i64::from(limit))
                .bind(until)
                .bind(now)
                .bind(after.map(|cursor| cursor.priority))
                .bind(after.map(|cursor| cursor.run_at))
                .bind(after.map(|cursor| cursor.id))
                .fetch_all(pool)
                .await?;
                let mut last: Option<ClaimCursor> = None;
                for row in &rows {
                    let position = ClaimCursor {
                        priority: row.try_get("priority")?,
                        run_at: row.try_get("run_at")?,
                        id: row.try_get("id")?,
                    };
                    if last.as_ref().is_none_or(|last| position.key() > last.key()) {
                        last = Some(position);
                    }
                }
                Ok((rows.iter().map(pg_claimed).collect::<Result<_, _>>()?, last))
            }
        }
    }

    /// Extends the lease of a run this worker still holds; false when it lost the lease.
    pub async fn heartbeat(
        &self,
        job: &Claimed,
        worker: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let result = match self {
            Self::Sqlite(pool) => {
                sqlx::query("UPDATE jobs SET locked_until = ? WHERE id = ? AND locked_by = ? AND attempts = ? AND state = 'running'")
                    .bind(until)
                    .bind(job.id)
                    .bind(worker)
                    .bind(job.attempt)
                    .execute(pool)
                    .await?
            .rows_affected()
            }
            Self::Postgres(pool) => {
                sqlx::query("UPDATE jobs SET locked_until = $1 WHERE id = $2 AND locked_by = $3 AND attempts = $4 AND state = 'running'")
                    .bind(until)
                    .bind(job.id)
                    .bind(worker)
                    .bind(job.attempt)
                    .execute(pool)
                    .await?
            .rows_affected()
            }
        };
        Ok(result == 1)
    }

    /// Gives an unfinished run back (shutdown): ready again at once, the attempt not counted.
    pub async fn release(&self, job: &Claimed, worker: &str) -> Result<bool, sqlx::Error> {
        let now = Utc::now();
        let result = match self {
            Self::Sqlite(pool) => sqlx::query(
                "UPDATE jobs SET state = 'ready', attempts = attempts - 1, run_at = ?, locked_until = NULL, locked_by = NULL
                 WHERE id = ? AND locked_by = ? AND attempts = ? AND state = 'running'",
            )
            .bind(now)
            .bind(job.id)
            .bind(worker)
            .bind(job.attempt)
            .execute(pool)
            .await?
            .rows_affected(),
            Self::Postgres(pool) => sqlx::query(
                "UPDATE jobs SET state = 'ready', attempts = attempts - 1, run_at = $1, locked_until = NULL, locked_by = NULL
                 WHERE id = $2 AND locked_by = $3 AND attempts = $4 AND state = 'running'",
            )
            .bind(now)
            .bind(job.id)
            .bind(worker)
            .bind(job.attempt)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(result == 1)
    }

    /// Deletes done and cancelled jobs that finished before `before` (dead jobs stay until an
    /// operator retries or cancels them); returns how many.
    pub async fn delete_finished(&self, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        let result = match self {
            Self::Sqlite(pool) => {
                sqlx::query("DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at < ?")
                    .bind(before)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Self::Postgres(pool) => {
                sqlx::query("DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at < $1")
                    .bind(before)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(result)
    }

    /// Jobs matching `filter`, newest first.
    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, sqlx::Error> {
        let state = filter.state.map(JobState::as_str);
        let limit = i64::from(filter.limit.clamp(1, 1000));
        match self {
            Self::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {RECORD_COLUMNS} FROM jobs WHERE (? IS NULL OR state = ?) AND (? IS NULL OR queue = ?)
                     ORDER BY id DESC LIMIT ?"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(state)
                    .bind(state)
                    .bind(&filter.queue)
                    .bind(&filter.queue)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(sqlite_record).collect()
            }
            Self::Postgres(pool) => {
                let sql = format!(
                    "SELECT {RECORD_COLUMNS} FROM jobs WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR queue = $2)
                     ORDER BY id DESC LIMIT $3"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(state)
                    .bind(&filter.queue)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(pg_record).collect()
            }
        }
    }

    /// One job.
    pub async fn get(&self, id: Uuid) -> Result<Option<JobRecord>, sqlx::Error> {
        match self {
            Self::Sqlite(pool) => {
                let sql = format!("SELECT {RECORD_COLUMNS} FROM jobs WHERE id = ?");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(sqlite_record).transpose()
            }
            Self::Postgres(pool) => {
                let sql = format!("SELECT {RECORD_COLUMNS} FROM jobs WHERE id = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(pg_record).transpose()
            }
        }
    }

    /// Sends a dead or cancelled job back to the queue with fresh attempts; false when the job
    /// is in another state.
    pub async fn retry(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        let result = match self {
            Self::Sqlite(pool) => sqlx::query(
                "UPDATE jobs SET state = 'ready', attempts = 0, run_at = ?, finished_at = NULL
                 WHERE id = ? AND state IN ('dead', 'cancelled')",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
            Self::Postgres(pool) => sqlx::query(
                "UPDATE jobs SET state = 'ready', attempts = 0, run_at = $1, finished_at = NULL
                 WHERE id = $2 AND state IN ('dead', 'cancelled')",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(result == 1)
    }

    /// Cancels a job that has not started; false when it is running or finished.
    pub async fn cancel(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        let result = match self {
            Self::Sqlite(pool) => sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state = 'ready'",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
            Self::Postgres(pool) => sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE id = $2 AND state = 'ready'",
            )
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(result == 1)
    }

    /// Depth, running, dead and the age of the oldest due job, per queue.
    pub async fn stats(&self, now: DateTime<Utc>) -> Result<Vec<QueueStats>, sqlx::Error> {
        match self {
            Self::Sqlite(pool) => {
                let rows = sqlx::query(
                    "SELECT queue,
                            sum(state = 'ready') AS ready, sum(state = 'running') AS running, sum(state = 'dead') AS dead,
                            min(CASE WHEN state = 'ready' AND run_at <= ? THEN run_at END) AS oldest
                     FROM jobs WHERE state IN ('ready', 'running', 'dead') GROUP BY queue",
                )
                .bind(now)
                .fetch_all(pool)
                .await?;
                rows.iter().map(|row| stats_from_row!(row, now)).collect()
            }
            Self::Postgres(pool) => {
                let rows = sqlx::query(
                    "SELECT queue,
                            count(*) FILTER (WHERE state = 'ready') AS ready,
                            count(*) FILTER (WHERE state = 'running') AS running,
                            count(*) FILTER (WHERE state = 'dead') AS dead,
                            min(run_at) FILTER (WHERE state = 'ready' AND run_at <= $1) AS oldest
                     FROM jobs WHERE state IN ('ready', 'running', 'dead') GROUP BY queue",
                )
                .bind(now)
                .fetch_all(pool)
                .await?;
                rows.iter().map(|row| stats_from_row!(row, now)).collect()
            }
        }
    }
}
