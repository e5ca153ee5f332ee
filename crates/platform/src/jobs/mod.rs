//! A durable job queue on SQL: typed jobs, leases, retries with backoff, a dead state, and
//! recurring jobs — on SQLite (embedded) and PostgreSQL (`FOR UPDATE SKIP LOCKED`, woken by
//! `LISTEN/NOTIFY` with a polling fallback). The model is crates.io's worker, with a lease
//! instead of a transaction held open for the whole run.
//!
//! Life of a job: `ready` → claimed by a worker (`running`, `attempts + 1`, `locked_until` =
//! now + lease, renewed by a heartbeat) → `done`; or, on an error, `ready` again after an
//! exponential backoff with jitter, until `max_attempts`, then `dead` with its last error. A
//! worker that dies leaves its lease to expire: the reaper records an *interruption* (not a
//! failure) and the job becomes `ready` again. Every completion and failure is fenced by
//! `(locked_by, attempts)`, so a worker that lost its lease cannot overwrite the outcome of the
//! run that replaced it. Delivery is at least once: handlers must be idempotent.
//!
//! Enqueueing ([`EnqueueJob`]) works on a connection of either backend, so a job can be written
//! in the same transaction as the data it follows: no committed row without its job, no job without its row.

mod outcomes;
mod runner;
mod schedule;
mod store;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

pub use runner::{JobContext, Registry, Worker, WorkerOptions};
pub use schedule::{Recurring, parse_schedule};
pub use store::{ClaimCursor, Claimed, EnqueueJob, JobFilter, JobStore, QueueStats};

/// Every named statement of the queue, for `scripts/explain-queries`.
pub const STATEMENTS: &[crate::sql::Sql] = &[
    store::INSERT,
    store::NOTIFY,
    store::REAP,
    store::CLAIM,
    store::HEARTBEAT,
    outcomes::FINISH,
    store::RELEASE,
    store::LIST,
    store::GET,
    store::RETRY,
    store::CANCEL,
    store::STATS,
    store::DELETE_FINISHED,
    schedule::RECURRING_INSERT,
    schedule::RECURRING_DUE,
    schedule::RECURRING_ADVANCE,
];

/// A kind of job: its payload is the implementing type itself.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name stored with each job; renaming it orphans queued jobs.
    const NAME: &'static str;
    /// The queue it runs on (workers can be dedicated to queues).
    const QUEUE: &'static str = "default";
    /// Runs before it is declared dead.
    const MAX_ATTEMPTS: i32 = 5;
    /// Higher runs first among due jobs of a queue.
    const PRIORITY: i16 = 0;

    /// A job ready to enqueue.
    fn to_new_job(&self) -> Result<NewJob, serde_json::Error> {
        Ok(NewJob {
            id: Uuid::now_v7(),
            queue: Self::QUEUE.to_owned(),
            name: Self::NAME.to_owned(),
            payload: serde_json::to_value(self)?,
            priority: Self::PRIORITY,
            max_attempts: Self::MAX_ATTEMPTS,
            run_at: None,
            dedup_key: None,
        })
    }
}

/// A job as stored, before it is enqueued.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Identifier (UUIDv7).
    pub id: Uuid,
    /// Queue name.
    pub queue: String,
    /// Job kind ([`Job::NAME`]).
    pub name: String,
    /// The serialised job.
    pub payload: serde_json::Value,
    /// Higher first.
    pub priority: i16,
    /// Runs before `dead`.
    pub max_attempts: i32,
    /// Not before this time (`None` = now).
    pub run_at: Option<DateTime<Utc>>,
    /// While a job with this key is ready or running, enqueueing another is a no-op.
    pub dedup_key: Option<String>,
}

impl NewJob {
    /// Only one ready-or-running job with `key` at a time.
    pub fn dedup(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// Not before `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its `run_at`, or for a worker.
    Ready,
    /// Claimed by a worker whose lease runs until `locked_until`.
    Running,
    /// Finished successfully.
    Done,
    /// Failed `max_attempts` times; kept with its last error until retried.
    Dead,
    /// Cancelled by an operator before it ran.
    Cancelled,
}

impl JobState {
    /// Every state, in the order of a job's life (an operator's filter lists them).
    pub const ALL: [Self; 5] = [
        Self::Ready,
        Self::Running,
        Self::Done,
        Self::Dead,
        Self::Cancelled,
    ];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// The inverse of [`JobState::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ready" => Self::Ready,
            "running" => Self::Running,
            "done" => Self::Done,
            "dead" => Self::Dead,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// Declares job kinds: each a payload struct (every field public, the derives a job needs)
/// and its [`Job`] impl, so every kind is declared the same way.
///
/// ```ignore
/// outgrow_platform::jobs! {
///     /// Sends one e-mail.
///     SendEmail("email.send", queue = "mail", attempts = 8) {
///         /// Recipient.
///         to: String,
///     }
///     /// Deletes expired sessions.
///     CleanUpSessions("sessions.cleanup", attempts = 3) {}
/// }
/// ```
#[macro_export]
macro_rules! jobs {
    ($(
        $(#[$doc:meta])*
        $name:ident($job:literal $(, queue = $queue:literal)?, attempts = $attempts:literal) {
            $($(#[$field_doc:meta])* $field:ident: $type:ty),* $(,)?
        }
    )+) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
            pub struct $name {
                $($(#[$field_doc])* pub $field: $type,)*
            }

            impl $crate::jobs::Job for $name {
                const NAME: &'static str = $job;
                $(const QUEUE: &'static str = $queue;)?
                const MAX_ATTEMPTS: i32 = $attempts;
            }
        )+
    };
}

/// A stored job, as operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    /// Identifier.
    pub id: Uuid,
    /// Queue.
    pub queue: String,
    /// Kind.
    pub name: String,
    /// The serialised job.
    pub payload: serde_json::Value,
    /// Priority.
    pub priority: i16,
    /// Lifecycle state.
    pub state: JobState,
    /// Runs started so far.
    pub attempts: i32,
    /// Runs allowed.
    pub max_attempts: i32,
    /// Runs whose worker vanished (lease expired), counted apart from failures.
    pub interruptions: i32,
    /// Next eligible time.
    pub run_at: DateTime<Utc>,
    /// Lease end while running.
    pub locked_until: Option<DateTime<Utc>>,
    /// The worker holding the lease.
    pub locked_by: Option<String>,
    /// The error of the last failed run (or the interruption notice).
    pub last_error: Option<String>,
    /// Dedup key, if any.
    pub dedup_key: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it reached done, dead or cancelled.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Delay before retry number `attempt` (1-based): 2^(attempt-1) × `base`, capped at `max`,
/// with ±20 % jitter so a burst of failures does not retry in lockstep.
pub fn backoff(attempt: i32, base: Duration, max: Duration) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(20);
    let delay = base.saturating_mul(1 << exponent).min(max);
    let factor = rand::Rng::random_range(&mut rand::rng(), 0.8..=1.2);
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_until_the_cap_with_bounded_jitter() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for (attempt, expected) in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (30, 60.0)] {
            let delay = backoff(attempt, base, max).as_secs_f64();
            assert!(
                delay >= expected * 0.8 && delay <= expected * 1.2,
                "attempt {attempt}: {delay}"
            );
        }
    }

    #[test]
    fn states_round_trip_through_text() {
        for state in [
            JobState::Ready,
            JobState::Running,
            JobState::Done,
            JobState::Dead,
            JobState::Cancelled,
        ] {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("lost"), None);
    }
}
