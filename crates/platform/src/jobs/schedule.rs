//! Recurring jobs: a cron schedule per name, run once per tick however many workers run.
//!
//! `recurring_jobs` holds each schedule's next due time. A worker that finds it due advances
//! it with a compare-and-set (`WHERE next_run_at = <the due time it read>`) and enqueues the
//! job in the same transaction: only the worker whose update matched enqueues, so a tick runs
//! exactly once. Ticks missed while no worker ran are not replayed one by one: the next run
//! catches up once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use croner::Cron;

use super::{
    NewJob,
    store::{EnqueueJob, JobStore},
};
use crate::{shutdown::ShutdownSignal, sql::Sql, with_pool};

/// One recurring job.
#[derive(Clone)]
pub struct Recurring {
    /// Unique name (also the dedup key prefix).
    pub name: &'static str,
    /// When it runs (standard 5-field cron, UTC).
    pub schedule: Cron,
    /// The job to enqueue at each tick.
    pub job: Arc<dyn Fn() -> Result<NewJob, serde_json::Error> + Send + Sync>,
}

impl std::fmt::Debug for Recurring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recurring")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Recurring {
    /// `name` runs `job` on `cron` (e.g. `"5 * * * *"`; an optional sixth, leading field gives
    /// seconds).
    pub fn new(
        name: &'static str,
        cron: &str,
        job: impl Fn() -> Result<NewJob, serde_json::Error> + Send + Sync + 'static,
    ) -> Result<Self, croner::errors::CronError> {
        Ok(Self {
            name,
            schedule: parse_schedule(cron)?,
            job: Arc::new(job),
        })
    }

    fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.find_next_occurrence(&time, false).ok()
    }
}

/// Records a schedule's first tick (kept when the schedule already exists).
pub const RECURRING_INSERT: Sql = Sql::new(
    "recurring.insert",
    "INSERT INTO recurring_jobs (name, next_run_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
);
/// A schedule's next due time.
pub const RECURRING_DUE: Sql = Sql::new(
    "recurring.due",
    "SELECT next_run_at FROM recurring_jobs WHERE name = $1",
);
/// Advances a due schedule: a compare-and-set on the due time that was read.
pub const RECURRING_ADVANCE: Sql = Sql::new(
    "recurring.advance",
    "UPDATE recurring_jobs SET next_run_at = $1 WHERE name = $2 AND next_run_at = $3",
);

impl JobStore {
    /// Enqueues `recurring`'s job if its tick is due and no other worker took it; returns
    /// whether this call enqueued.
    pub async fn run_due(&self, recurring: &Recurring, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
        let Some(first) = recurring.next_after(now) else {
            return Ok(false);
        };
        with_pool!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            sqlx::query(sql(RECURRING_INSERT))
                .bind(recurring.name)
                .bind(first)
                .execute(&mut *tx)
                .await?;
            let due: DateTime<Utc> = sqlx::query_scalar(sql(RECURRING_DUE))
                .bind(recurring.name)
                .fetch_one(&mut *tx)
                .await?;
            if due > now {
                // Keep the row inserted above: the schedule's first tick is now known.
                tx.commit().await?;
                return Ok(false);
            }
            let next = recurring.next_after(now).unwrap_or(first);
            let advanced = sqlx::query(sql(RECURRING_ADVANCE))
                .bind(next)
                .bind(recurring.name)
                .bind(due)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if advanced == 1 {
                let job = job_for(recurring, due)?;
                tx.enqueue(&job).await?;
            }
            tx.commit().await?;
            Ok(advanced == 1)
        })
    }

    /// Checks every schedule each second until `stop`.
    pub async fn run_scheduler(self, schedules: Vec<Recurring>, stop: ShutdownSignal) {
        if schedules.is_empty() {
            return;
        }
        let stopped = stop.stopped();
        tokio::pin!(stopped);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stopped => return,
            }
            for recurring in &schedules {
                match self.run_due(recurring, Utc::now()).await {
                    Ok(true) => tracing::info!(schedule = recurring.name, "recurring job enqueued"),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(schedule = recurring.name, %error, "recurring job check failed")
                    }
                }
            }
        }
    }
}

/// Parses a cron pattern: five fields (minute precision), or six with seconds first.
pub fn parse_schedule(cron: &str) -> Result<Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(cron)
}

fn job_for(recurring: &Recurring, due: DateTime<Utc>) -> Result<NewJob, sqlx::Error> {
    let job = (recurring.job)().map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
    Ok(job.dedup(format!("{}@{}", recurring.name, due.to_rfc3339())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_field_patterns_give_the_next_tick() {
        let now: DateTime<Utc> = "2026-11-30T07:02:51.5Z".parse().expect("time");
        let hourly = parse_schedule("17 * * * *").expect("pattern");
        assert_eq!(
            hourly
                .find_next_occurrence(&now, false)
                .expect("next")
                .to_rfc3339(),
            "2026-11-30T07:17:00+00:00"
        );
        let every_two_seconds = parse_schedule("*/2 * * * * *").expect("pattern");
        let next = every_two_seconds.find_next_occurrence(&now, false);
        assert_eq!(next.expect("next").to_rfc3339(), "2026-11-30T07:02:52+00:00");
    }
}
