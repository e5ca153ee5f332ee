//! Job queue throughput on PostgreSQL: enqueue latency, then jobs per second drained by one
//! and by two `outgrow worker` processes (release build, 8 slots each).
//!
//! The job is `sessions.cleanup` — a real handler running one `DELETE` — so the figures are
//! the queue's own cost (claim with `FOR UPDATE SKIP LOCKED`, lease, heartbeat, fenced
//! outcome) plus one statement, not the cost of an e-mail server.
//!
//! Run: `. "$(scripts/services up | tail -n1)" && cargo bench -p outgrow --bench jobs -- [--jobs 5000]`.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use outgrow_platform::jobs::{Job, JobStore};
use sqlx::Connection;

const JWT_KEYS: &str = "bench:0123456789abcdef0123456789abcdef-bench";

fn main() -> anyhow::Result<()> {
    let mut jobs = 5000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--jobs" => jobs = args.next().context("--jobs needs a number")?.parse()?,
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(jobs))
}

async fn run(jobs: usize) -> anyhow::Result<()> {
    let Ok(primary) = std::env::var("OUTGROW_TEST_PG_PRIMARY") else {
        println!("skipped: start the test services first (. \"$(scripts/services up | tail -n1)\")");
        return Ok(());
    };
    let name = format!("bench_jobs_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&primary).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await?;
    let url = format!(
        "{}/{name}",
        primary
            .rsplit_once('/')
            .map_or(primary.as_str(), |(base, _)| base)
    );
    let dir = tempfile::tempdir()?;
    let command = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_outgrow"));
        command
            .args(args)
            .env("OUTGROW_DATABASE_URL", &url)
            .env("OUTGROW_JWT_KEYS", JWT_KEYS)
            .env("OUTGROW_DATA_DIR", dir.path())
            .env("OUTGROW_LOG_LEVEL", "warn")
            .env("OUTGROW_WORKER_CONCURRENCY", "8");
        command
    };
    let migrated = command(&["migrate"]).output()?;
    anyhow::ensure!(
        migrated.status.success(),
        "migrate failed: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let pool = sqlx::PgPool::connect(&url).await?;
    let store = JobStore::Postgres(pool.clone());

    println!("PostgreSQL job queue, {jobs} jobs per run (sessions.cleanup: one DELETE each)");
    for workers in [1usize, 2] {
        let mut latencies = Vec::with_capacity(jobs);
        let enqueue_started = Instant::now();
        for index in 0..jobs {
            let job = outgrow::jobs::CleanUpSessions {}.to_new_job()?;
            let sent = Instant::now();
            store.enqueue(&job).await?;
            latencies.push(sent.elapsed().as_micros() as u64);
            if index % 1000 == 999 {
                eprint!("\r  enqueued {}/{jobs}", index + 1);
            }
        }
        eprintln!();
        let enqueue_elapsed = enqueue_started.elapsed();
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0;
        println!(
            "enqueue: {:.0} jobs/s from one connection; latency p50 {:.3} ms, p99 {:.3} ms",
            jobs as f64 / enqueue_elapsed.as_secs_f64(),
            at(0.5),
            at(0.99)
        );

        let done_before = done(&pool).await?;
        let started = Instant::now();
        let mut children: Vec<Child> = (0..workers)
            .map(|_| command(&["worker"]).stdout(Stdio::null()).spawn())
            .collect::<Result<_, _>>()?;
        loop {
            let finished = done(&pool).await? - done_before;
            eprint!("\r  {workers} worker(s): {finished}/{jobs} done");
            if finished as usize >= jobs {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "the workers stalled"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!();
        let elapsed = started.elapsed();
        for child in &mut children {
            child.kill().ok();
            child.wait().ok();
        }
        println!(
            "drain with {workers} worker process(es): {jobs} jobs in {:.2} s = {:.0} jobs/s (includes worker start-up)",
            elapsed.as_secs_f64(),
            jobs as f64 / elapsed.as_secs_f64()
        );
    }
    let duplicates: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE attempts > 1")
        .fetch_one(&pool)
        .await?;
    println!("jobs run more than once: {duplicates}");
    Ok(())
}

async fn done(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'done'")
            .fetch_one(pool)
            .await?,
    )
}
