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
//!      and, scaled, a read-your-writes marker and an invalidation message);
//!    - catalog: `GET /api/v1/products/{id}` anonymously, ids drawn from a Zipf distribution
//!      (s = 1.0) over the seeded catalog — the product cache's hit rate is reported from
//!      `/metrics`;
//!    - order: `POST /api/v1/orders` of one Zipf-drawn product (stock reserved on the primary,
//!      the order written on the buyer's shard, the e-mail job queued);
//!    - events: `POST /api/v1/events` with 100 events (group commit).
//!
//!    Before the scenarios, `outgrow seed` fills the database (`--seed-users`, `--seed-products`,
//!    `--seed-orders`; default 100,000 / 10,000 / 1,000,000) and its rates are printed.
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
    seed_users: u64,
    seed_products: u64,
    seed_orders: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: 10,
        concurrency: 32,
        in_process_requests: 20_000,
        seed_users: 100_000,
        seed_products: 10_000,
        seed_orders: 1_000_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("a value must follow the flag");
        match arg.as_str() {
            "--seconds" => options.seconds = value()?.parse()?,
            "--concurrency" => options.concurrency = value()?.parse()?,
            "--requests" => options.in_process_requests = value()?.parse()?,
            "--seed-users" => options.seed_users = value()?.parse()?,
            "--seed-products" => options.seed_products = value()?.parse()?,
            "--seed-orders" => options.seed_orders = value()?.parse()?,
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
    // The primary's database and two shards for orders and events.
    let shards: Vec<String> = (0..2).map(|index| format!("{name}_s{index}")).collect();
    for database in std::iter::once(&name).chain(&shards) {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{database}\"")))
            .execute(&mut connection)
            .await?;
    }
    let with_db =
        |url: &str, name: &str| format!("{}/{name}", url.rsplit_once('/').map_or(url, |(base, _)| base));
    let replicas: Vec<String> = replicas.split(',').map(|url| with_db(url, &name)).collect();
    let shards: Vec<String> = shards.iter().map(|shard| with_db(&primary, shard)).collect();
    Ok(Some(vec![
        ("OUTGROW_DATABASE_URL".into(), with_db(&primary, &name)),
        ("OUTGROW_DATABASE_REPLICA_URLS".into(), replicas.join(",")),
        ("OUTGROW_DATABASE_SHARD_URLS".into(), shards.join(",")),
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
    seed(dir.path(), backend, options)?;
    let result = drive(&base, options).await;
    server.kill().ok();
    server.wait().ok();
    result
}

/// `outgrow seed` on the server's database, printing its rates.
fn seed(data_dir: &std::path::Path, backend: &[(String, String)], options: &Options) -> anyhow::Result<()> {
    let output = Command::new(env!("CARGO_BIN_EXE_outgrow"))
        .args([
            "seed",
            "--users",
            &options.seed_users.to_string(),
            "--products",
            &options.seed_products.to_string(),
            "--orders",
            &options.seed_orders.to_string(),
        ])
        .env("OUTGROW_DATA_DIR", data_dir)
        .env("OUTGROW_JWT_KEYS", JWT_KEYS)
        .env("OUTGROW_LOG_LEVEL", "warn")
        .envs(backend.iter().map(|(key, value)| (key, value)))
        .stderr(Stdio::inherit())
        .output()
        .context("running outgrow seed")?;
    anyhow::ensure!(
        output.status.success(),
        "outgrow seed failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        println!("  seed {line}");
    }
    Ok(())
}

/// Every product id, in catalog order (the Zipf ranks).
async fn product_ids(client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/products?limit=100");
        if let Some(after) = &after {
            url.push_str(&format!("&after={after}"));
        }
        let page: Value = client.get(&url).send().await?.error_for_status()?.json().await?;
        for item in page["items"].as_array().context("items")? {
            ids.push(item["id"].as_str().context("id")?.to_owned());
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(ids),
        }
    }
}

/// Zipf(s = 1.0) ranks over `n` items, by inverting the cumulative weights.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize) -> Self {
        let mut total = 0.0;
        Self(
            (1..=n)
                .map(|rank| {
                    total += 1.0 / rank as f64;
                    total
                })
                .collect(),
        )
    }

    fn sample(&self) -> usize {
        use rand::Rng;
        let total = self.0.last().copied().unwrap_or(1.0);
        let target = rand::rng().random_range(0.0..total);
        self.0
            .partition_point(|weight| *weight < target)
            .min(self.0.len().saturating_sub(1))
    }
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
    Catalog,
    Order,
    Events,
}

async fn drive(base: &str, options: &Options) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let mut users = Vec::new();
    for index in 0..options.concurrency {
        users.push(Arc::new(sign_up(&client, base, index).await?));
    }
    let products = Arc::new(product_ids(&client, base).await?);
    anyhow::ensure!(!products.is_empty(), "seed some products (--seed-products)");
    let zipf = Arc::new(Zipf::new(products.len()));
    let catalog = Catalog { products, zipf };
    for (name, scenario) in [
        ("read", Scenario::Read),
        ("write", Scenario::Write),
        ("catalog", Scenario::Catalog),
        ("order", Scenario::Order),
        ("events", Scenario::Events),
    ] {
        let (samples, errors, elapsed) = load(&client, base, &users, &catalog, scenario, options).await?;
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
        "users cache: {hits:.0} hits, {misses:.0} misses ({:.2} % hit rate); queries: primary {:.0}, replica-1 {:.0}, replica-2 {:.0}",
        100.0 * hits / (hits + misses).max(1.0),
        counter(r#"db_queries_total{pool="primary"}"#),
        counter(r#"db_queries_total{pool="replica-1"}"#),
        counter(r#"db_queries_total{pool="replica-2"}"#),
    );
    let (hits, misses) = (
        counter(r#"cache_requests_total{cache="products",result="hit"}"#),
        counter(r#"cache_requests_total{cache="products",result="miss"}"#),
    );
    println!(
        "products cache (Zipf over {} products): {hits:.0} hits, {misses:.0} misses ({:.2} % hit rate); events stored: {:.0}; orders placed: {:.0}",
        catalog.products.len(),
        100.0 * hits / (hits + misses).max(1.0),
        metrics
            .lines()
            .filter(|line| line.starts_with("events_stored_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>(),
        counter("orders_placed_total"),
    );
    Ok(())
}

/// The seeded catalog and how its products are drawn.
struct Catalog {
    products: Arc<Vec<String>>,
    zipf: Arc<Zipf>,
}

async fn load(
    client: &reqwest::Client,
    base: &str,
    users: &[Arc<BenchUser>],
    catalog: &Catalog,
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
        let (products, zipf) = (catalog.products.clone(), catalog.zipf.clone());
        tokio::spawn(async move {
            let (mut samples, mut errors) = (Vec::new(), 0usize);
            let read_url = format!("{base}/api/v1/users/{}", user.id);
            let write_url = format!("{base}/api/v1/me");
            let mut counter = 0u64;
            while Instant::now() < deadline {
                counter += 1;
                let sent = Instant::now();
                let request = match scenario {
                    Scenario::Read => client.get(&read_url).bearer_auth(&user.token),
                    Scenario::Write => client
                        .patch(&write_url)
                        .json(&json!({"name": format!("Bench {counter}")}))
                        .bearer_auth(&user.token),
                    Scenario::Catalog => {
                        client.get(format!("{base}/api/v1/products/{}", products[zipf.sample()]))
                    }
                    Scenario::Order => client
                        .post(format!("{base}/api/v1/orders"))
                        .json(&json!({"items": [{"product_id": products[zipf.sample()], "quantity": 1}]}))
                        .bearer_auth(&user.token),
                    Scenario::Events => client
                        .post(format!("{base}/api/v1/events"))
                        .json(&events_batch(counter))
                        .bearer_auth(&user.token),
                };
                match request.send().await {
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

/// 100 events for the events scenario.
fn events_batch(counter: u64) -> Value {
    let now = chrono::Utc::now().to_rfc3339();
    let events: Vec<Value> = (0..100)
        .map(|index| json!({"type": "product.viewed", "timestamp": now, "properties": {"n": counter, "i": index}}))
        .collect();
    json!({ "events": events })
}
