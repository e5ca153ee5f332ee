//! The queue's storage: one table (`jobs`) and one for recurring schedules
//! (`recurring_jobs`), on SQLite or PostgreSQL. The application owns the migrations.
//!
//! Every statement is a [`Sql`] constant below, written once; a second text for SQLite only
//! where the dialects differ (the claim, the statistics' `FILTER`, the list's `::text` casts).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, SqliteConnection, types::Json};
use uuid::Uuid;

use super::{JobRecord, JobState, NewJob};
use crate::{
    sql::{Sql, SqlPool, Statement},
    with_pool,
};

/// The notification channel workers listen on (PostgreSQL).
pub const NOTIFY_CHANNEL: &str = "outgrow_jobs";

/// The queue's database: SQLite's writer pool (every queue operation writes) or PostgreSQL's
/// primary. The queue's operations are methods of that pool.
pub type JobStore = SqlPool;

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

/// The columns of a [`JobRecord`] (a macro, so that the statements below are literals).
macro_rules! record_columns {
    () => {
        "id, queue, name, payload, priority, state, attempts, max_attempts, interruptions, run_at, \
         locked_until, locked_by, last_error, dedup_key, created_at, finished_at"
    };
}

/// Enqueues a job (a dedup key already pending makes it a no-op).
pub const INSERT: Sql = Sql::new(
    "jobs.insert",
    "INSERT INTO jobs (id, queue, name, payload, priority, state, attempts, max_attempts, \
     interruptions, run_at, dedup_key, created_at) VALUES ($1, $2, $3, $4, $5, 'ready', 0, $6, 0, $7, $8, $9) \
     ON CONFLICT DO NOTHING",
);
/// Wakes the listening workers when the enqueueing transaction commits (PostgreSQL only).
pub const NOTIFY: Sql = Sql::new("jobs.notify", "SELECT pg_notify($1, $2)");
/// Returns expired leases to the queue, or to `dead` when out of attempts.
pub const REAP: Sql = Sql::new(
    "jobs.reap",
    "UPDATE jobs SET
                 state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'ready' END,
                 finished_at = CASE WHEN attempts >= max_attempts THEN $1 ELSE NULL END,
                 interruptions = interruptions + 1,
                 last_error = 'interrupted: the lease of ' || coalesce(locked_by, '?') || ' expired before the run finished',
                 run_at = $1, locked_until = NULL, locked_by = NULL
             WHERE state = 'running' AND locked_until < $1",
);
/// Claims due jobs. PostgreSQL: `claim_jobs` (migration 0009), an `UPDATE … WHERE id IN (the
/// first `limit` due ready jobs after the position, FOR UPDATE SKIP LOCKED)` with its plan
/// pinned to the ordered index walk. SQLite: one writer at a time, so the subquery and the
/// update are atomic without locks; the queues come as a JSON array (`json_each`).
pub const CLAIM: Sql = Sql::per_backend(
    "jobs.claim",
    "SELECT id, queue, name, payload, attempts, max_attempts, priority, run_at
                     FROM claim_jobs($1, $2, $3, $4, $5, $6, $7, $8)",
    "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_until = $4, locked_by = $2
                     WHERE id IN (SELECT id FROM jobs
                                  WHERE state = 'ready' AND run_at <= $5 AND queue IN (SELECT value FROM json_each($1))
                                  ORDER BY priority DESC, run_at LIMIT $3)
                     RETURNING id, queue, name, payload, attempts, max_attempts, priority, run_at",
);
/// Extends a lease the worker still holds.
pub const HEARTBEAT: Sql = Sql::new(
    "jobs.heartbeat",
    "UPDATE jobs SET locked_until = $1 WHERE id = $2 AND locked_by = $3 AND attempts = $4 AND state = 'running'",
);
/// Gives an unfinished run back (shutdown), the attempt not counted.
pub const RELEASE: Sql = Sql::new(
    "jobs.release",
    "UPDATE jobs SET state = 'ready', attempts = attempts - 1, run_at = $1, locked_until = NULL, locked_by = NULL
                 WHERE id = $2 AND locked_by = $3 AND attempts = $4 AND state = 'running'",
);
/// Deletes finished jobs (dead ones stay until an operator acts).
pub const DELETE_FINISHED: Sql = Sql::new(
    "jobs.delete_finished",
    "DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND finished_at < $1",
);
/// Jobs by optional state and queue, newest first. SQLite has no `::text` cast (PostgreSQL
/// needs it to type a parameter that may be NULL).
pub const LIST: Sql = Sql::per_backend(
    "jobs.list",
    concat!(
        "SELECT ",
        record_columns!(),
        " FROM jobs WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR queue = $2)
                     ORDER BY id DESC LIMIT $3"
    ),
    concat!(
        "SELECT ",
        record_columns!(),
        " FROM jobs WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR queue = $2)
                     ORDER BY id DESC LIMIT $3"
    ),
);
/// One job.
pub const GET: Sql = Sql::new(
    "jobs.get",
    concat!("SELECT ", record_columns!(), " FROM jobs WHERE id = $1"),
);
/// Sends a dead or cancelled job back to the queue with fresh attempts.
pub const RETRY: Sql = Sql::new(
    "jobs.retry",
    "UPDATE jobs SET state = 'ready', attempts = 0, run_at = $1, finished_at = NULL
                 WHERE id = $2 AND state IN ('dead', 'cancelled')",
);
/// Cancels a job that has not started.
pub const CANCEL: Sql = Sql::new(
    "jobs.cancel",
    "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE id = $2 AND state = 'ready'",
);
/// Depth, running, dead and the oldest due job per queue (SQLite has no `FILTER`: it sums
/// booleans instead).
pub const STATS: Sql = Sql::per_backend(
    "jobs.stats",
    "SELECT queue,
                            count(*) FILTER (WHERE state = 'ready') AS ready,
                            count(*) FILTER (WHERE state = 'running') AS running,
                            count(*) FILTER (WHERE state = 'dead') AS dead,
                            min(run_at) FILTER (WHERE state = 'ready' AND run_at <= $1) AS oldest
                     FROM jobs WHERE state IN ('ready', 'running', 'dead') GROUP BY queue",
    "SELECT queue,
                            sum(state = 'ready') AS ready, sum(state = 'running') AS running, sum(state = 'dead') AS dead,
                            min(CASE WHEN state = 'ready' AND run_at <= $1 THEN run_at END) AS oldest
                     FROM jobs WHERE state IN ('ready', 'running', 'dead') GROUP BY queue",
);

/// A row of `jobs` as stored (the state as text, the payload as JSON).
#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    queue: String,
    name: String,
    payload: Json<serde_json::Value>,
    priority: i16,
    state: String,
    attempts: i32,
    max_attempts: i32,
    interruptions: i32,
    run_at: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
    locked_by: Option<String>,
    last_error: Option<String>,
    dedup_key: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = sqlx::Error;

    fn try_from(row: JobRow) -> Result<Self, Self::Error> {
        let state = JobState::parse(&row.state)
            .ok_or_else(|| sqlx::Error::Decode(format!("job state {:?}", row.state).into()))?;
        Ok(Self {
            id: row.id,
            queue: row.queue,
            name: row.name,
            payload: row.payload.0,
            priority: row.priority,
            state,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            interruptions: row.interruptions,
            run_at: row.run_at,
            locked_until: row.locked_until,
            locked_by: row.locked_by,
            last_error: row.last_error,
            dedup_key: row.dedup_key,
            created_at: row.created_at,
            finished_at: row.finished_at,
        })
    }
}

/// A claimed row: the job and its position in claim order.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: Uuid,
    queue: String,
    name: String,
    payload: Json<serde_json::Value>,
    attempts: i32,
    max_attempts: i32,
    priority: i16,
    run_at: DateTime<Utc>,
}

/// One row of the per-queue statistics.
#[derive(sqlx::FromRow)]
struct StatsRow {
    queue: String,
    ready: i64,
    running: i64,
    dead: i64,
    oldest: Option<DateTime<Utc>>,
}

/// Enqueues a job on a connection of either backend — pass a transaction to enqueue
/// atomically with the data the job follows. False when a job with its dedup key is pending.
pub trait EnqueueJob {
    /// Inserts `job` (PostgreSQL: and notifies the workers when the transaction commits).
    fn enqueue(&mut self, job: &NewJob) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
}

/// Runs [`INSERT`] for `job` on one connection (compiled once per backend).
macro_rules! insert_job {
    ($connection:expr, $text:expr, $job:expr, $now:expr) => {
        sqlx::query($text)
            .bind($job.id)
            .bind(&$job.queue)
            .bind(&$job.name)
            .bind(Json(&$job.payload))
            .bind($job.priority)
            .bind($job.max_attempts)
            .bind($job.run_at.unwrap_or($now))
            .bind(&$job.dedup_key)
            .bind($now)
            .execute($connection)
            .await?
            .rows_affected()
            == 1
    };
}

impl EnqueueJob for SqliteConnection {
    async fn enqueue(&mut self, job: &NewJob) -> Result<bool, sqlx::Error> {
        let now = Utc::now();
        Ok(insert_job!(&mut *self, INSERT.for_sqlite(), job, now))
    }
}

impl EnqueueJob for PgConnection {
    async fn enqueue(&mut self, job: &NewJob) -> Result<bool, sqlx::Error> {
        let now = Utc::now();
        let inserted = insert_job!(&mut *self, INSERT.for_postgres(), job, now);
        // Delivered at commit, to every listening worker; a lost one is covered by polling.
        sqlx::query(NOTIFY.for_postgres())
            .bind(NOTIFY_CHANNEL)
            .bind(&job.queue)
            .execute(&mut *self)
            .await?;
        Ok(inserted)
    }
}

impl JobStore {
    /// Enqueues `job` on its own (not tied to other data).
    pub async fn enqueue(&self, job: &NewJob) -> Result<bool, sqlx::Error> {
        with_pool!(self, |pool, _sql| {
            let mut tx = pool.begin().await?;
            let inserted = tx.enqueue(job).await?;
            tx.commit().await?;
            Ok(inserted)
        })
    }

    /// Returns expired leases to the queue (or to `dead` when out of attempts), recording an
    /// interruption; returns how many.
    pub async fn reap_expired(&self, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        self.execute_at(REAP, now).await
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
        let rows: Vec<ClaimedRow> = match self {
            Self::Sqlite(pool) => {
                let queues = serde_json::to_string(queues).unwrap_or_else(|_| "[]".into());
                sqlx::query_as(CLAIM.for_sqlite())
                    .bind(queues)
                    .bind(worker)
                    .bind(i64::from(limit))
                    .bind(until)
                    .bind(now)
                    .fetch_all(pool)
                    .await?
            }
            Self::Postgres(pool) => {
                sqlx::query_as(CLAIM.for_postgres())
                    .bind(queues)
                    .bind(worker)
                    .bind(i64::from(limit))
                    .bind(until)
                    .bind(now)
                    .bind(after.map(|cursor| cursor.priority))
                    .bind(after.map(|cursor| cursor.run_at))
                    .bind(after.map(|cursor| cursor.id))
                    .fetch_all(pool)
                    .await?
            }
        };
        let mut last: Option<ClaimCursor> = None;
        if matches!(self, Self::Postgres(_)) {
            for row in &rows {
                let position = ClaimCursor {
                    priority: row.priority,
                    run_at: row.run_at,
                    id: row.id,
                };
                if last.as_ref().is_none_or(|last| position.key() > last.key()) {
                    last = Some(position);
                }
            }
        }
        let claimed = rows
            .into_iter()
            .map(|row| Claimed {
                id: row.id,
                queue: row.queue,
                name: row.name,
                payload: row.payload.0,
                attempt: row.attempts,
                max_attempts: row.max_attempts,
            })
            .collect();
        Ok((claimed, last))
    }

    /// Extends the lease of a run this worker still holds; false when it lost the lease.
    pub async fn heartbeat(
        &self,
        job: &Claimed,
        worker: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        self.update_own_run(HEARTBEAT, until, job, worker).await
    }

    /// Gives an unfinished run back (shutdown): ready again at once, the attempt not counted.
    pub async fn release(&self, job: &Claimed, worker: &str) -> Result<bool, sqlx::Error> {
        self.update_own_run(RELEASE, Utc::now(), job, worker).await
    }

    /// Runs `statement` (`$1` a time; `$2`–`$4` the run's id, worker and attempt) on a run
    /// that is still this worker's: false when the fence no longer matches (the lease was lost).
    async fn update_own_run(
        &self,
        statement: Sql,
        at: DateTime<Utc>,
        job: &Claimed,
        worker: &str,
    ) -> Result<bool, sqlx::Error> {
        let updated = with_pool!(self, |pool, sql| {
            sqlx::query(sql(statement))
                .bind(at)
                .bind(job.id)
                .bind(worker)
                .bind(job.attempt)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Deletes done and cancelled jobs that finished before `before` (dead jobs stay until an
    /// operator retries or cancels them); returns how many.
    pub async fn delete_finished(&self, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        self.execute_at(DELETE_FINISHED, before).await
    }

    /// Jobs matching `filter`, newest first.
    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, sqlx::Error> {
        let state = filter.state.map(JobState::as_str);
        let limit = i64::from(filter.limit.clamp(1, 1000));
        let rows: Vec<JobRow> = with_pool!(self, |pool, sql| {
            sqlx::query_as(sql(LIST))
                .bind(state)
                .bind(&filter.queue)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(JobRecord::try_from).collect()
    }

    /// One job.
    pub async fn get(&self, id: Uuid) -> Result<Option<JobRecord>, sqlx::Error> {
        let row: Option<JobRow> = with_pool!(self, |pool, sql| {
            sqlx::query_as(sql(GET)).bind(id).fetch_optional(pool).await?
        });
        row.map(JobRecord::try_from).transpose()
    }

    /// Sends a dead or cancelled job back to the queue with fresh attempts; false when the job
    /// is in another state.
    pub async fn retry(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        self.update_job(RETRY, now, id).await
    }

    /// Cancels a job that has not started; false when it is running or finished.
    pub async fn cancel(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        self.update_job(CANCEL, now, id).await
    }

    /// Runs `statement`, whose one parameter is the time `at`: how many jobs it changed.
    async fn execute_at(&self, statement: Sql, at: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        Ok(with_pool!(self, |pool, sql| {
            sqlx::query(sql(statement))
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Runs `statement` (`$1` the time, `$2` the job's id): true when it changed the job.
    async fn update_job(&self, statement: Sql, now: DateTime<Utc>, id: Uuid) -> Result<bool, sqlx::Error> {
        let updated = with_pool!(self, |pool, sql| {
            sqlx::query(sql(statement))
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Depth, running, dead and the age of the oldest due job, per queue.
    pub async fn stats(&self, now: DateTime<Utc>) -> Result<Vec<QueueStats>, sqlx::Error> {
        let rows: Vec<StatsRow> = with_pool!(self, |pool, sql| {
            sqlx::query_as(sql(STATS)).bind(now).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|row| QueueStats {
                queue: row.queue,
                ready: row.ready,
                running: row.running,
                dead: row.dead,
                oldest_ready_seconds: row.oldest.map_or(0.0, |at| (now - at).as_seconds_f64().max(0.0)),
            })
            .collect())
    }
}
