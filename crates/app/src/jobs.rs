//! The store's background jobs and the worker that runs them.
//!
//! Job kinds: `email.send` (queue `mail`) and the hourly `sessions.cleanup` (recurring). The
//! worker runs inside `outgrow serve` unless `--no-workers`, or alone as `outgrow worker`;
//! either way it stops claiming at SIGTERM and finishes or releases its jobs within
//! `shutdown_timeout`.

use chrono::Utc;
use outgrow_platform::{
    jobs::{Job, JobContext, Recurring, Registry, Worker, WorkerOptions},
    shutdown::ShutdownSignal,
};
use serde::{Deserialize, Serialize};

use crate::{mail, state::AppState};

/// Sends one e-mail. At least once: a worker that dies after the SMTP server accepted the
/// message but before recording success sends it again (the `Message-ID` stays the same).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendEmail {
    /// Recipient.
    pub to: String,
    /// Which e-mail, with what it needs.
    pub template: EmailTemplate,
}

/// The e-mails Outgrow sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EmailTemplate {
    /// After registration.
    Welcome {
        /// The new user's display name.
        name: String,
    },
}

impl Job for SendEmail {
    const NAME: &'static str = "email.send";
    const QUEUE: &'static str = "mail";
    const MAX_ATTEMPTS: i32 = 8;
}

async fn send_email(job: SendEmail, context: JobContext<AppState>) -> anyhow::Result<()> {
    let email = match &job.template {
        EmailTemplate::Welcome { name } => mail::welcome(&job.to, name),
    };
    let state = &context.app;
    state
        .mailer
        .send(&state.settings.mail_from, &email, context.job_id)
        .await?;
    tracing::info!(to = job.to, subject = email.subject, "e-mail sent");
    Ok(())
}

/// Deletes sessions past their end (the SQL session store; Redis expires its own).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CleanUpSessions {}

impl Job for CleanUpSessions {
    const NAME: &'static str = "sessions.cleanup";
    const MAX_ATTEMPTS: i32 = 3;
}

async fn clean_up_sessions(_job: CleanUpSessions, context: JobContext<AppState>) -> anyhow::Result<()> {
    let deleted = context.app.sessions.delete_expired(Utc::now()).await?;
    tracing::info!(deleted, "expired sessions deleted");
    Ok(())
}

/// Every job kind this build runs.
pub fn registry() -> Registry<AppState> {
    Registry::default()
        .register(send_email)
        .register(clean_up_sessions)
}

/// The recurring schedules.
pub fn schedules() -> Vec<Recurring> {
    // A fixed, valid pattern: parsing cannot fail.
    Recurring::new("sessions.cleanup", "17 * * * *", || {
        CleanUpSessions {}.to_new_job()
    })
    .map(|schedule| vec![schedule])
    .unwrap_or_default()
}

/// Runs the worker and the recurring scheduler until `stop`, then drains.
pub async fn run_workers(state: AppState, stop: ShutdownSignal) {
    let settings = &state.settings;
    let options = WorkerOptions {
        queues: settings.worker_queues.clone(),
        concurrency: settings.worker_concurrency,
        lease: settings.job_lease,
        poll_interval: settings.job_poll_interval,
        backoff_base: settings.job_backoff_base,
        backoff_max: settings.job_backoff_max,
        shutdown_timeout: settings.shutdown_timeout,
    };
    let store = state.db.jobs();
    let scheduler = tokio::spawn(store.clone().run_scheduler(schedules(), stop.clone()));
    Worker::new(store, registry(), state.clone(), options)
        .run(stop)
        .await;
    let _ = scheduler.await;
}
