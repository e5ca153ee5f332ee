//! `outgrow jobs`: inspecting and steering the job queue from a shell.

use std::process::ExitCode;

use chrono::Utc;
use outgrow_platform::config::Settings;

use super::JobsCommand;
use crate::db::Database;

/// `outgrow jobs list|show|retry|cancel|stats`.
pub(super) async fn run(settings: &Settings, command: JobsCommand) -> anyhow::Result<ExitCode> {
    use outgrow_platform::jobs::{JobFilter, JobState};
    let db = Database::open(settings).await?;
    let store = db.jobs();
    let now = Utc::now();
    let code = match command {
        JobsCommand::List { state, queue, limit } => {
            let state = match state.as_deref() {
                None => None,
                Some(text) => Some(JobState::parse(text).ok_or_else(|| {
                    anyhow::anyhow!("--state must be one of ready, running, done, dead, cancelled")
                })?),
            };
            let jobs = store.list(&JobFilter { state, queue, limit }).await?;
            println!(
                "{:<36}  {:<9}  {:<8}  {:<18}  {:>8}  {:<25}  last error",
                "id", "state", "queue", "name", "attempts", "run at"
            );
            for job in &jobs {
                println!(
                    "{:<36}  {:<9}  {:<8}  {:<18}  {:>3} of {:<2}  {:<25}  {}",
                    job.id,
                    job.state.as_str(),
                    job.queue,
                    job.name,
                    job.attempts,
                    job.max_attempts,
                    job.run_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    job.last_error.as_deref().unwrap_or("")
                );
            }
            println!("{} job(s)", jobs.len());
            ExitCode::SUCCESS
        }
        JobsCommand::Show { id } => match store.get(id).await? {
            Some(job) => {
                println!("{}", serde_json::to_string_pretty(&job)?);
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no job {id}");
                ExitCode::FAILURE
            }
        },
        JobsCommand::Retry { id } => changed(
            store.retry(id, now).await?,
            &format!("job {id} is ready again (attempts reset)"),
            &format!("job {id} is not dead or cancelled (or does not exist)"),
        ),
        JobsCommand::Cancel { id } => changed(
            store.cancel(id, now).await?,
            &format!("job {id} cancelled"),
            &format!("job {id} is not waiting to run (or does not exist)"),
        ),
        JobsCommand::Stats => {
            for queue in store.stats(now).await? {
                println!(
                    "{}: {} ready, {} running, {} dead, oldest due job waiting {:.1} s",
                    queue.queue, queue.ready, queue.running, queue.dead, queue.oldest_ready_seconds
                );
            }
            ExitCode::SUCCESS
        }
    };
    db.close().await;
    Ok(code)
}

/// Reports a retry or cancel: `done` on standard output when the job changed, `refused` on
/// standard error (and a failing exit) when it did not.
fn changed(changed: bool, done: &str, refused: &str) -> ExitCode {
    if changed {
        println!("{done}");
        ExitCode::SUCCESS
    } else {
        eprintln!("{refused}");
        ExitCode::FAILURE
    }
}
