//! Job queue throughput on PostgreSQL: enqueue latency, then jobs per second drained by one
//! and by two `outgrow worker` processes (release build, 8 slots each).
//!
//! The job is `sessions.cleanup` — a real handler running one `DELETE` — so the figures are
//! the queue's own cost (claim with `FOR UPDATE SKIP LOCKED`, lease, heartbeat, fenced
//! outcome) plus one statement, not the cost of an e-mail server.
//!
//! The drain is timed from the moment the jobs become due, with the workers already running:
//! jobs are enqueued for tomorrow, the workers start and report ready, then one `UPDATE` makes
//! every job due (and one `NOTIFY` wakes the workers). Start-up is not counted.
//!
//! Run: `. "$(scripts/services up | tail -n1)" && cargo bench -p outgrow --bench jobs -- [--jobs 20000]`.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use outgrow_platform::jobs::{Job, JobStore};
use sqlx::Connection;

const JWT_KEYS: &str = "bench:0123456789abcdef0123456789abcdef-bench";

fn main() -> anyhow::Result<()> {
    let mut jobs = 20_000usize;
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
            // The workers' "running" line, not one line per job.
            .env("OUTGROW_LOG_LEVEL", "warn,outgrow=info")
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
        let tomorrow = chrono::Utc::now() + chrono::TimeDelta::days(1);
        for index in 0..jobs {
            let job = outgrow::jobs::CleanUpSessions {}.to_new_job()?.run_at(tomorrow);
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
        let mut children: Vec<Child> = (0..workers)
            .map(|_| {
                command(&["worker"])
                    .stderr(Stdio::piped())
                    .stdout(Stdio::null())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        for child in &mut children {
            let stderr = child.stderr.take().context("worker stderr")?;
            let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
            anyhow::ensure!(
                lines.any(|line| line.is_ok_and(|line| line.contains("Outgrow worker running"))),
                "a worker did not start"
            );
            // Keep draining its stderr so that it never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
        }
        let ticks_before = cpu_ticks();
        let started = Instant::now();
        sqlx::query("UPDATE jobs SET run_at = now() WHERE state = 'ready'")
            .execute(&pool)
            .await?;
        sqlx::query("SELECT pg_notify('outgrow_jobs', 'default')")
            .execute(&pool)
            .await?;
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
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!();
        let elapsed = started.elapsed();
        let steal = steal_percent(ticks_before, cpu_ticks());
        for child in &mut children {
            child.kill().ok();
            child.wait().ok();
        }
        println!(
            "drain with {workers} worker process(es): {jobs} jobs in {:.2} s = {:.0} jobs/s (from the moment they were due); CPU steal {steal}",
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

/// The machine's CPU time so far and the part of it stolen by the hypervisor (USER_HZ ticks,
/// `/proc/stat`), `None` where there is no such file.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    Some((fields.iter().sum(), *fields.get(7)?))
}

/// The share of the CPU time between two readings that the hypervisor gave to other machines:
/// a drain measured with much of it measured a slower machine.
fn steal_percent(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> String {
    match (before, after) {
        (Some((total0, steal0)), Some((total1, steal1))) if total1 > total0 => {
            format!(
                "{:.1} %",
                100.0 * (steal1 - steal0) as f64 / (total1 - total0) as f64
            )
        }
        _ => "n/a".to_owned(),
    }
}
