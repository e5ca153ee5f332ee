//! Benchmarks of the hot paths, on the embedded and the scaled backends.
//!
//! 1. in-process: an authenticated, cache-served `GET /api/v1/users/{id}` through the router
//!    called directly, one request at a time — the CPU cost of the whole middleware stack
//!    (request id, span, metrics, security headers, CORS, authentication with its session
//!    check, rate limiting, cache-aside), without sockets;
//! 2. over loopback HTTP against the release `outgrow` binary in its own process, driven by
//!    `--concurrency` keep-alive connections for `--seconds` per scenario:
//!    - read: the same cached `GET /api/v1/users/{id}`, each connection as its own user;
//!    - write: `PATCH /api/v1/me` (a new name: an UPDATE on the primary, a cache invalidation
//!      and, scaled, a read-your-writes marker and an invalidation message).
//!
//!    First on the embedded backends, then — when the test services are up
//!    (`. "$(scripts/services up | tail -n1)"`) — on PostgreSQL with two replicas and Redis.
//!    Client and server share this machine's cores.
//!
//! Run: `cargo bench -p outgrow --bench hot_path -- [--seconds 10] [--concurrency 32]`.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::body::Body;
use outgrow::state::App;
use outgrow_platform::{config::Settings, shutdown::Shutdown};
use serde_json::{Value, json};
use tower::ServiceExt;

const JWT_KEYS: &str = "bench:0123456789abcdef0123456789abcdef-bench";
const PASSWORD: &str = "correct horse battery";

struct Options {
    seconds: u64,
    concurrency: usize,
    in_process_requests: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: 10,
        concurrency: 32,
        in_process_requests: 20_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value must follow the flag");
        match arg.as_str() {
            "--seconds" => options.seconds = value()?.parse()?,
            "--concurrency" => options.concurrency = value()?.parse()?,
            "--requests" => options.in_process_requests = value()?.parse()?,
            // `cargo bench` passes --bench; nothing else is expected.
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        in_process(&options).await?;
        over_http(&options).await
    })
}

/// Latency percentiles of `samples` (microseconds), printed as one table row.
fn report(label: &str, mut samples: Vec<u64>, elapsed: Duration, errors: usize) {
    if samples.is_empty() {
        println!("{label:<12} no successful requests ({errors} errors)");
        return;
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0;
    println!(
        "{label:<12} {:>9} requests {errors:>4} errors {:>10.0} req/s   p50 {:>7.3} ms   p95 {:>7.3} ms   p99 {:>7.3} ms   max {:>8.3} ms",
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.95),
        at(0.99),
        at(1.0),
    );
}

async fn in_process(options: &Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        data_dir: dir.path().to_owned(),
        jwt_keys: Some(JWT_KEYS.to_owned().into()),
        rate_limit_default: "1000000000/1s".parse().map_err(anyhow::Error::msg)?,
        rate_limit_auth: "1000/1s".parse().map_err(anyhow::Error::msg)?,
        ..Settings::default()
    };
    let state = App::build(settings, Shutdown::new()).await?;
    let router = outgrow::http::router(state);
    let call = |request: axum::http::Request<Body>| {
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await?;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
            anyhow::Ok((status, body))
        }
    };
    let json_post = |path: &str, body: Value| {
        axum::http::Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
    };
    call(json_post(
        "/api/v1/auth/register",
        json!({"email": "bench@example.org", "password": PASSWORD, "name": "Bench"}),
    )?)
    .await?;
    let (_, login) = call(json_post(
        "/api/v1/auth/login",
        json!({"email": "bench@example.org", "password": PASSWORD}),
    )?)
    .await?;
    let login: Value = serde_json::from_slice(&login)?;
    let path = format!("/api/v1/users/{}", login["user"]["id"].as_str().context("id")?);
    let bearer = format!("Bearer {}", login["access_token"].as_str().context("token")?);

    println!(
        "in-process: {} sequential requests through the router (no sockets)",
        options.in_process_requests
    );
    let mut samples = Vec::with_capacity(options.in_process_requests);
    let mut errors = 0;
    let started = Instant::now();
    for _ in 0..options.in_process_requests {
        let request = axum::http::Request::get(&path)
            .header("authorization", &bearer)
            .body(Body::empty())?;
        let sent = Instant::now();
        let (status, _) = call(request).await?;
        samples.push(sent.elapsed().as_micros() as u64);
        errors += usize::from(!status.is_success());
    }
    report("in-process", samples, started.elapsed(), errors);
    Ok(())
}

/// The backend settings of the scaled run: a fresh database on the test services' primary
/// (replicated to both replicas) and a fresh Redis prefix; `None` when the services are not up.
async fn scaled_backend() -> anyhow::Result<Option<Vec<(String, String)>>> {
    use sqlx::Connection;
    let (Ok(primary), Ok(replicas), Ok(redis)) = (
        std::env::var("OUTGROW_TEST_PG_PRIMARY"),
        std::env::var("OUTGROW_TEST_PG_REPLICAS"),
        std::env::var("OUTGROW_TEST_REDIS"),
    ) else {
        return Ok(None);
    };
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(&primary).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut connection)
        .await?;
    let with_db = |url: &str| format!("{}/{name}", url.rsplit_once('/').map_or(url, |(base, _)| base));
    let replicas: Vec<String> = replicas.split(',').map(with_db).collect();
    Ok(Some(vec![
        ("OUTGROW_DATABASE_URL".into(), with_db(&primary)),
        ("OUTGROW_DATABASE_REPLICA_URLS".into(), replicas.join(",")),
        ("OUTGROW_REDIS_URL".into(), redis),
        ("OUTGROW_REDIS_KEY_PREFIX".into(), format!("{name}:")),
    ]))
}

async fn over_http(options: &Options) -> anyhow::Result<()> {
    run_backend("embedded", &[], options).await?;
    match scaled_backend().await? {
        Some(backend) => run_backend("scaled", &backend, options).await,
        None => {
            println!("scaled: skipped (start the test services: . \"$(scripts/services up | tail -n1)\")");
            Ok(())
        }
    }
}

async fn run_backend(label: &str, backend: &[(String, String)], options: &Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Command::new(env!("CARGO_BIN_EXE_outgrow"))
        .arg("serve")
        .env("OUTGROW_LISTEN", "127.0.0.1:0")
        .env("OUTGROW_DATA_DIR", dir.path())
        .env("OUTGROW_JWT_KEYS", JWT_KEYS)
        .env("OUTGROW_LOG_FORMAT", "json")
        .env("OUTGROW_LOG_LEVEL", "warn,outgrow=info")
        .env("OUTGROW_RATE_LIMIT_DEFAULT", "1000000000/1s")
        .env("OUTGROW_RATE_LIMIT_AUTH", "1000000/1s")
        .envs(backend.iter().map(|(key, value)| (key, value)))
        .stdout(Stdio::piped())
        .spawn()
        .context("starting outgrow")?;
    let stdout = server.stdout.take().context("stdout")?;
    let mut address = None;
    let mut backends = String::new();
    for line in BufReader::new(stdout).lines() {
        let event: Value = serde_json::from_str(&line?).unwrap_or_default();
        if event["message"] == "Outgrow listening" {
            address = event["address"].as_str().map(str::to_owned);
            backends = event["backends"].as_str().unwrap_or_default().to_owned();
            break;
        }
    }
    let base = format!("http://{}", address.context("the server did not start")?);
    println!("\n{label}: {backends}");
    let result = drive(&base, options).await;
    server.kill().ok();
    server.wait().ok();
    result
}

/// A signed-in user of the benchmark.
struct BenchUser {
    id: String,
    token: String,
}

async fn sign_up(client: &reqwest::Client, base: &str, index: usize) -> anyhow::Result<BenchUser> {
    let email = format!("bench{index}@example.org");
    client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "name": "Bench"}))
        .send()
        .await?
        .error_for_status()?;
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(BenchUser {
        id: login["user"]["id"].as_str().context("id")?.to_owned(),
        token: login["access_token"].as_str().context("token")?.to_owned(),
    })
}

#[derive(Clone, Copy)]
enum Scenario {
    Read,
    Write,
}

async fn drive(base: &str, options: &Options) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let mut users = Vec::new();
    for index in 0..options.concurrency {
        users.push(Arc::new(sign_up(&client, base, index).await?));
    }
    for (name, scenario) in [("read", Scenario::Read), ("write", Scenario::Write)] {
        let (samples, errors, elapsed) = load(&client, base, &users, scenario, options).await?;
        report(name, samples, elapsed, errors);
    }
    let metrics = client.get(format!("{base}/metrics")).send().await?.text().await?;
    let counter = |series: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (hits, misses) = (
        counter(r#"cache_requests_total{cache="users",result="hit"}"#),
        counter(r#"cache_requests_total{cache="users",result="miss"}"#),
    );
    println!(
        "cache: {hits:.0} hits, {misses:.0} misses ({:.2} % hit rate); queries: primary {:.0}, replica-1 {:.0}, replica-2 {:.0}",
        100.0 * hits / (hits + misses).max(1.0),
        counter(r#"db_queries_total{pool="primary"}"#),
        counter(r#"db_queries_total{pool="replica-1"}"#),
        counter(r#"db_queries_total{pool="replica-2"}"#),
    );
    Ok(())
}

async fn load(
    client: &reqwest::Client,
    base: &str,
    users: &[Arc<BenchUser>],
    scenario: Scenario,
    options: &Options,
) -> anyhow::Result<(Vec<u64>, usize, Duration)> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let progress = tokio::spawn({
        let seconds = options.seconds;
        async move {
            for second in 1..=seconds {
                tokio::time::sleep(Duration::from_secs(1)).await;
                eprint!("\r  {second}/{seconds} s");
            }
            eprintln!();
        }
    });
    let workers = users.iter().map(|user| {
        let (client, user, base) = (client.clone(), user.clone(), base.to_owned());
        tokio::spawn(async move {
            let (mut samples, mut errors) = (Vec::new(), 0usize);
            let read_url = format!("{base}/api/v1/users/{}", user.id);
            let write_url = format!("{base}/api/v1/me");
            let mut counter = 0u64;
            while Instant::now() < deadline {
                counter += 1;
                let sent = Instant::now();
                let request = match scenario {
                    Scenario::Read => client.get(&read_url),
                    Scenario::Write => client
                        .patch(&write_url)
                        .json(&json!({"name": format!("Bench {counter}")})),
                };
                match request.bearer_auth(&user.token).send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        samples.push(sent.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (samples, errors)
        })
    });
    let mut samples = Vec::new();
    let mut errors = 0;
    for worker in futures::future::join_all(workers).await {
        let (worker_samples, worker_errors) = worker?;
        samples.extend(worker_samples);
        errors += worker_errors;
    }
    let elapsed = started.elapsed();
    progress.await?;
    Ok((samples, errors, elapsed))
}
