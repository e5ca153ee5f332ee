//! Outcomes of runs, recorded in batches (group commit).
//!
//! Each finished run used to cost its own fenced `UPDATE`: with a claim and the handler's own
//! statement, three round trips per job, and on a small machine the database's time per
//! statement, not the handlers, bounded the drain rate. A worker now hands every outcome to one
//! recorder task, which writes whatever has accumulated in one statement while the previous
//! batch is in flight: under load a batch carries as many outcomes as runs finished meanwhile;
//! alone, an outcome is written at once, as before.
//!
//! The queue's promises are unchanged. Every outcome is still fenced by (worker, attempt), row
//! by row inside the statement. A run's slot is freed as soon as its handler returns, so the
//! worker claims the next job while the outcome is being written (claims batch too: the slots
//! freed meanwhile are claimed together). If the process dies with outcomes unwritten, those
//! jobs' leases expire and they run again — the at-least-once delivery that handlers are
//! written for; at shutdown the worker waits for the recorder to write everything.

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::store::{Claimed, JobStore};
use crate::sql::{Sql, Statement};

/// The most outcomes written by one statement.
const MAX_BATCH: usize = 500;

/// How a run ended: `Ok`, or the error and when to retry (`None`: the job is dead).
pub(crate) type RunResult = Result<(), (String, Option<DateTime<Utc>>)>;

/// One run's outcome, waiting to be written.
struct Pending {
    job: Claimed,
    result: RunResult,
    now: DateTime<Utc>,
}

/// Hands outcomes to the recorder task; cheap to clone, one per running job.
#[derive(Clone)]
pub(crate) struct Outcomes {
    sender: mpsc::UnboundedSender<Pending>,
}

impl Outcomes {
    /// Starts the recorder for `worker`'s runs; it ends once every [`Outcomes`] is dropped
    /// and what they sent is written.
    pub(crate) fn start(store: JobStore, worker: String) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record(store, worker, receiver));
        (Self { sender }, recorder)
    }

    /// Queues `result` for `job`, to be written (fenced) with the next batch.
    pub(crate) fn submit(&self, job: Claimed, result: RunResult, now: DateTime<Utc>) {
        // A refused send hands the outcome back: no copy of the job is kept for the message.
        if let Err(mpsc::error::SendError(pending)) = self.sender.send(Pending { job, result, now }) {
            tracing::error!(job_id = %pending.job.id, name = %pending.job.name, "the outcome recorder has stopped; the lease will expire and the job run again");
        }
    }
}

async fn record(store: JobStore, worker: String, mut receiver: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        metrics::histogram!("jobs_outcome_batch_size").record(batch.len() as f64);
        let rows: Vec<(&Claimed, &RunResult, DateTime<Utc>)> = batch
            .iter()
            .map(|pending| (&pending.job, &pending.result, pending.now))
            .collect();
        let written = store.finish_all(&rows, &worker).await;
        drop(rows);
        match written {
            Ok(updated) => {
                for pending in batch.iter().filter(|pending| !updated.contains(&pending.job.id)) {
                    tracing::warn!(job_id = %pending.job.id, name = %pending.job.name, "the lease was lost before the outcome was recorded; another run owns the job");
                }
            }
            Err(error) => {
                tracing::error!(jobs = batch.len(), %error, "recording outcomes failed; the leases will expire and the jobs run again");
            }
        }
        batch.clear();
    }
}

/// Records outcomes, fenced by (worker, attempt) row by row. PostgreSQL: the whole batch in one
/// statement (`unnest` of one array per column). SQLite: one row per statement, the batch in
/// one transaction (one writer: the commit is what costs).
pub const FINISH: Sql = Sql::per_backend(
    "jobs.finish",
    "UPDATE jobs AS j SET state = o.state, last_error = coalesce(o.error, j.last_error),
                            run_at = coalesce(o.run_at, j.run_at), finished_at = o.finished_at,
                            locked_until = NULL, locked_by = NULL
                     FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
                          AS o(id, attempt, state, error, run_at, finished_at)
                     WHERE j.id = o.id AND j.attempts = o.attempt AND j.locked_by = $7 AND j.state = 'running'
                     RETURNING j.id",
    "UPDATE jobs SET state = $1, last_error = coalesce($2, last_error), run_at = coalesce($3, run_at),
                                finished_at = $4, locked_until = NULL, locked_by = NULL
                         WHERE id = $5 AND locked_by = $6 AND attempts = $7 AND state = 'running'",
);

/// The columns one outcome writes.
struct Columns<'a> {
    state: &'static str,
    error: Option<&'a str>,
    run_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

fn columns(result: &RunResult, now: DateTime<Utc>) -> Columns<'_> {
    let (state, error, run_at, finished_at) = match result {
        Ok(()) => ("done", None, None, Some(now)),
        Err((error, Some(retry_at))) => ("ready", Some(error.as_str()), Some(*retry_at), None),
        Err((error, None)) => ("dead", Some(error.as_str()), None, Some(now)),
    };
    Columns {
        state,
        error,
        run_at,
        finished_at,
    }
}

impl JobStore {
    /// Records the outcome of each run in `outcomes` — `Ok` → done; an error → ready again at
    /// its retry time, or dead without one — in one statement (SQLite: one transaction).
    /// Fenced row by row: returns the ids of the jobs whose run still held them.
    pub(crate) async fn finish_all(
        &self,
        outcomes: &[(&Claimed, &RunResult, DateTime<Utc>)],
        worker: &str,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        match self {
            Self::Sqlite(pool) => {
                // One writer: the transaction costs one commit for the whole batch.
                let mut tx = pool.begin().await?;
                let mut updated = Vec::with_capacity(outcomes.len());
                for (job, result, now) in outcomes {
                    let outcome = columns(result, *now);
                    let rows = sqlx::query(FINISH.for_sqlite())
                        .bind(outcome.state)
                        .bind(outcome.error)
                        .bind(outcome.run_at)
                        .bind(outcome.finished_at)
                        .bind(job.id)
                        .bind(worker)
                        .bind(job.attempt)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if rows == 1 {
                        updated.push(job.id);
                    }
                }
                tx.commit().await?;
                Ok(updated)
            }
            Self::Postgres(pool) => {
                // One array per column, each in the order of `outcomes`.
                let rows: Vec<Columns> = outcomes
                    .iter()
                    .map(|(_, result, now)| columns(result, *now))
                    .collect();
                let ids: Vec<Uuid> = outcomes.iter().map(|(job, ..)| job.id).collect();
                let attempts: Vec<i32> = outcomes.iter().map(|(job, ..)| job.attempt).collect();
                let states: Vec<&str> = rows.iter().map(|row| row.state).collect();
                let errors: Vec<Option<&str>> = rows.iter().map(|row| row.error).collect();
                let run_ats: Vec<Option<DateTime<Utc>>> = rows.iter().map(|row| row.run_at).collect();
                let finished_ats: Vec<Option<DateTime<Utc>>> =
                    rows.iter().map(|row| row.finished_at).collect();
                sqlx::query_scalar(FINISH.for_postgres())
                    .bind(ids)
                    .bind(attempts)
                    .bind(states)
                    .bind(errors)
                    .bind(run_ats)
                    .bind(finished_ats)
                    .bind(worker)
                    .fetch_all(pool)
                    .await
            }
        }
    }
}
