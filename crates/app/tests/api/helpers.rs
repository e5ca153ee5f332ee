//! Spawning the server and talking to it: the one place test plumbing lives.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

mod store;
pub use store::*;

/// A fixed signing key for tests that craft their own tokens.
pub const TEST_JWT_KEY: &str = "test-key:0123456789abcdef0123456789abcdef-test";
pub const TEST_JWT_KID: &str = "test-key";
pub const TEST_JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-test";
pub const PASSWORD: &str = "correct horse battery";

/// The compiled binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_outgrow")
}

/// A running server, killed when dropped.
pub struct TestApp {
    pub base: String,
    pub address: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub child: Child,
    /// The backend settings this server runs with (empty on the embedded backend).
    pub backend: Vec<(String, String)>,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: Option<tempfile::TempDir>,
}

/// Which backends the suite runs against: `OUTGROW_TEST_BACKEND=scaled` (set by scripts/test
/// for its second pass) means PostgreSQL with replicas and Redis, from the services that
/// scripts/services started; anything else means the embedded defaults.
pub fn scaled() -> bool {
    std::env::var("OUTGROW_TEST_BACKEND").is_ok_and(|backend| backend == "scaled")
}

/// The first line of every test that only makes sense on the scaled backends (several
/// instances, PostgreSQL shards, replicas, Redis). Such tests are named `scaled_only_*`:
/// `.config/nextest.toml`'s default filter leaves them out, so the embedded pass reports them as
/// skipped, and scripts/test's scaled passes select them with `--ignore-default-filter`. Run
/// any other way on the embedded backend, they fail here rather than pass without testing
/// anything.
pub fn require_scaled() {
    assert!(
        scaled(),
        "a scaled_only_ test: run it with OUTGROW_TEST_BACKEND=scaled (scripts/test does)"
    );
}

/// Whether the scaled pass uses the Redis Cluster that scripts/services started instead of its
/// single Redis: `OUTGROW_TEST_REDIS_MODE=cluster` (scripts/test's cluster pass).
pub fn redis_cluster_mode() -> bool {
    std::env::var("OUTGROW_TEST_REDIS_MODE").is_ok_and(|mode| mode == "cluster")
}

/// The setting that points a server at the shared test Redis: `OUTGROW_REDIS_URL` (the single
/// server), or `OUTGROW_REDIS_CLUSTER_URLS` (the cluster's seed nodes) in cluster mode.
pub fn shared_redis_setting() -> (String, String) {
    if redis_cluster_mode() {
        (
            "OUTGROW_REDIS_CLUSTER_URLS".into(),
            required_env("OUTGROW_TEST_REDIS_CLUSTER"),
        )
    } else {
        ("OUTGROW_REDIS_URL".into(), required_env("OUTGROW_TEST_REDIS"))
    }
}

pub fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: start the services with scripts/services up"))
}

/// `postgres://…/postgres` with the database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{database}")
}

/// A fresh database on the shared primary (replicated to its replicas) and a fresh Redis key
/// prefix, so tests sharing the services never see each other's data. Redis is the shared
/// single server, or the shared cluster in cluster mode ([`redis_cluster_mode`]).
pub async fn isolated_scaled_backend() -> Vec<(String, String)> {
    use sqlx::Connection;
    let primary = required_env("OUTGROW_TEST_PG_PRIMARY");
    let replicas = required_env("OUTGROW_TEST_PG_REPLICAS");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(&primary)
        .await
        .expect("connect to the test primary");
    // The primary's database and two shard databases for orders and events: every scaled
    // test runs sharded.
    let shards: Vec<String> = (0..2).map(|index| format!("{name}_s{index}")).collect();
    for database in std::iter::once(&name).chain(&shards) {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{database}\"")))
            .execute(&mut connection)
            .await
            .expect("create a test database");
    }
    let replica_urls: Vec<String> = replicas.split(',').map(|url| with_database(url, &name)).collect();
    let shard_urls: Vec<String> = shards
        .iter()
        .map(|shard| with_database(&primary, shard))
        .collect();
    vec![
        ("OUTGROW_DATABASE_URL".into(), with_database(&primary, &name)),
        ("OUTGROW_DATABASE_REPLICA_URLS".into(), replica_urls.join(",")),
        ("OUTGROW_DATABASE_SHARD_URLS".into(), shard_urls.join(",")),
        shared_redis_setting(),
        ("OUTGROW_REDIS_KEY_PREFIX".into(), format!("{name}:")),
        // Objects in the S3-compatible store (keys are UUIDs: tests never collide).
        (
            "OUTGROW_OBJECT_STORE_URL".into(),
            format!("s3://{}", required_env("OUTGROW_TEST_S3_BUCKET")),
        ),
        (
            "OUTGROW_S3_ENDPOINT".into(),
            required_env("OUTGROW_TEST_S3_ENDPOINT"),
        ),
        (
            "AWS_ACCESS_KEY_ID".into(),
            required_env("OUTGROW_TEST_S3_ACCESS_KEY_ID"),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            required_env("OUTGROW_TEST_S3_SECRET_ACCESS_KEY"),
        ),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
}

/// Environment every spawned process gets: isolated data dir, JSON logs, and nothing
/// inherited from the developer's own OUTGROW_* settings.
pub fn base_command(data_dir: &Path) -> Command {
    let mut command = Command::new(binary());
    for (name, _) in std::env::vars() {
        if name.starts_with("OUTGROW_") {
            command.env_remove(name);
        }
    }
    command
        .env("OUTGROW_DATA_DIR", data_dir)
        .env("OUTGROW_LOG_FORMAT", "json")
        .env("OUTGROW_JWT_KEYS", TEST_JWT_KEY)
        .env("OUTGROW_SECURE_COOKIES", "true")
        // Generous limits so functional tests never trip them; rate-limit tests set their own.
        .env("OUTGROW_RATE_LIMIT_AUTH", "1000/1m")
        .env("OUTGROW_RATE_LIMIT_DEFAULT", "10000/1m");
    command
}

/// How a test server starts: `TestApp::builder().settings(&[..]).api_only().spawn().await`.
/// By default a fresh data directory (removed with the app) and, on the scaled pass, a fresh
/// [`isolated_scaled_backend`]; `.backend(..)` shares another instance's database and Redis,
/// `.data_dir(..)` starts on an existing directory (a restart), `.restart_of(..)` both.
#[must_use = "nothing starts until .spawn()"]
#[derive(Default)]
pub struct TestAppBuilder {
    settings: Vec<(String, String)>,
    api_only: bool,
    backend: Option<Vec<(String, String)>>,
    data_dir: Option<PathBuf>,
}

impl TestAppBuilder {
    /// Extra `OUTGROW_*` settings; an empty value unsets the variable (e.g. a default the tests
    /// set, like `OUTGROW_JWT_KEYS`).
    pub fn settings(mut self, settings: &[(&str, &str)]) -> Self {
        self.settings.extend(
            settings
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
        );
        self
    }

    /// Runs no job workers (`serve --no-workers`).
    pub fn api_only(mut self) -> Self {
        self.api_only = true;
        self
    }

    /// Runs on `backend` (another instance's, to share its database and Redis) instead of a
    /// fresh one.
    pub fn backend(mut self, backend: &[(String, String)]) -> Self {
        self.backend = Some(backend.to_vec());
        self
    }

    /// Runs on an existing data directory, which the caller keeps.
    pub fn data_dir(mut self, data_dir: &Path) -> Self {
        self.data_dir = Some(data_dir.to_owned());
        self
    }

    /// Runs on `app`'s data directory and backend: a restart of `app`.
    pub fn restart_of(self, app: &TestApp) -> Self {
        self.data_dir(&app.data_dir).backend(&app.backend)
    }

    /// Starts the server and waits until it reports its address.
    pub async fn spawn(self) -> TestApp {
        let backend = match self.backend {
            Some(backend) => backend,
            None if scaled() => isolated_scaled_backend().await,
            None => Vec::new(),
        };
        let (data_dir, dir) = match self.data_dir {
            Some(data_dir) => (data_dir, None),
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                (dir.path().join("data"), Some(dir))
            }
        };
        let args: &[&str] = if self.api_only { &["--no-workers"] } else { &[] };
        spawn(&data_dir, &backend, &self.settings, args, dir).await
    }
}

async fn spawn(
    data_dir: &Path,
    backend: &[(String, String)],
    settings: &[(String, String)],
    args: &[&str],
    dir: Option<tempfile::TempDir>,
) -> TestApp {
    let mut command = base_command(data_dir);
    command
        .arg("serve")
        .args(args)
        .env("OUTGROW_LISTEN", "127.0.0.1:0");
    command.envs(backend.iter().map(|(key, value)| (key, value)));
    for (key, value) in settings {
        if value.is_empty() {
            command.env_remove(key);
        } else {
            command.env(key, value);
        }
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn outgrow");
    let stdout = child.stdout.take().expect("stdout");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (address_tx, address_rx) = mpsc::channel();
    let collected = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && event["message"] == "Outgrow listening"
            {
                let _ = address_tx.send(event["address"].as_str().unwrap_or_default().to_owned());
            }
            collected.lock().expect("logs").push(line);
        }
    });
    let address = tokio::task::spawn_blocking(move || address_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("join")
        .expect("the server did not report its address within 60 s");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    TestApp {
        base: format!("http://{address}"),
        address,
        client,
        data_dir: data_dir.to_owned(),
        backend: backend.to_vec(),
        child,
        logs,
        _dir: dir,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registered and signed-in user.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub id: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    /// How to start a server; see [`TestAppBuilder`].
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// Starts a server with the default test settings.
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    /// The `outgrow` command with this server's data dir and backend (for CLI calls).
    pub fn command(&self) -> Command {
        let mut command = base_command(&self.data_dir);
        command.envs(self.backend.iter().map(|(key, value)| (key, value)));
        command
    }

    /// Runs `outgrow <args>` on this server's data dir and backend, asserting that it
    /// succeeds; returns its standard output.
    pub fn run_cli(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("run outgrow");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "outgrow {}: {stdout}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Waits until the server process exits (after a signal), at most `within`.
    pub async fn wait_for_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "the server did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// Waits (bounded) until a log line satisfies `predicate`.
    pub async fn wait_for_log(&self, predicate: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let found = self
                .logs()
                .iter()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|event| predicate(event));
            if let Some(event) = found {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no matching log line; logs:\n{}", self.logs().join("\n"));
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// `GET path`, anonymously.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// `GET path`, anonymously, with one extra header (`If-None-Match`, `Cookie`, `Origin`…).
    pub async fn get_with_header(&self, path: &str, name: &str, value: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(name, value)
            .send()
            .await
            .expect("request")
    }

    /// `GET path`, anonymously, asserting a 200; returns the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        json_body(self.get(path).await, 200).await
    }

    /// `GET path` as the bearer of `token`, asserting a 200; returns the JSON body.
    pub async fn get_json_with_token(&self, path: &str, token: &str) -> Value {
        json_body(self.get_with_token(path, token).await, 200).await
    }

    /// `POST path` with a JSON `body` as the bearer of `token`.
    pub async fn post_json_with_token(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.send_with_token(self.client.post(self.url(path)).json(body), token)
            .await
    }

    /// `POST path` without a body as the bearer of `token`.
    pub async fn post_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.send_with_token(self.client.post(self.url(path)), token)
            .await
    }

    /// `PATCH path` with a JSON `body` as the bearer of `token`.
    pub async fn patch_json_with_token(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.send_with_token(self.client.patch(self.url(path)).json(body), token)
            .await
    }

    /// `DELETE path` as the bearer of `token`.
    pub async fn delete_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.send_with_token(self.client.delete(self.url(path)), token)
            .await
    }

    async fn send_with_token(&self, request: reqwest::RequestBuilder, token: &str) -> reqwest::Response {
        request.bearer_auth(token).send().await.expect("request")
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn register(&self, email: &str, password: &str, name: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/register",
            &json!({"email": email, "password": password, "name": name}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers a user with a unique address (`buyer{index}-…`) and signs them in.
    pub async fn signed_in_quick(&self, index: usize) -> SignedIn {
        self.signed_in(&unique_email(&format!("buyer{index}"))).await
    }

    /// Registers `email` (with [`PASSWORD`]) and signs in.
    pub async fn signed_in(&self, email: &str) -> SignedIn {
        let registered = self.register(email, PASSWORD, "Test User").await;
        assert_eq!(registered.status(), 201, "register {email}");
        self.sign_in(email, PASSWORD).await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> SignedIn {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), 200, "login {email}");
        let body: Value = response.json().await.expect("json");
        SignedIn {
            id: body["user"]["id"].as_str().expect("id").to_owned(),

            access_token: body["access_token"].as_str().expect("token").to_owned(),
            refresh_token: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// Creates an admin through the CLI (the only way) and signs them in.
    pub async fn admin(&self, email: &str) -> SignedIn {
        let output = self
            .command()
            .args(["admin", "create", "--email", email])
            .env("OUTGROW_ADMIN_PASSWORD", PASSWORD)
            .output()
            .expect("run admin create");
        assert!(
            output.status.success(),
            "admin create: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.sign_in(email, PASSWORD).await
    }

    /// `PATCH /api/v1/me` with `body`.
    pub async fn patch_me(&self, token: &str, body: Value) -> reqwest::Response {
        self.client
            .patch(self.url("/api/v1/me"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("patch")
    }

    /// Signs in asking for the browser cookie; returns the `name=value` cookie pair and the
    /// login response body.
    pub async fn cookie_login(&self, email: &str, password: &str) -> (String, Value) {
        let response = self
            .post_json(
                "/api/v1/auth/login",
                &json!({"email": email, "password": password, "session_cookie": true}),
            )
            .await;
        assert_eq!(response.status(), 200, "cookie login {email}");
        let set_cookie = header(&response, "set-cookie").expect("Set-Cookie");
        let pair = set_cookie.split(';').next().expect("cookie pair").to_owned();
        (pair, response.json().await.expect("json"))
    }

    /// Waits until the metric `series` satisfies `done`, at most `within`.
    pub async fn wait_for_metric(&self, series: &str, within: Duration, done: impl Fn(Option<f64>) -> bool) {
        let started = std::time::Instant::now();
        loop {
            let value = metric_value(&self.metrics().await, series);
            if done(value) {
                return;
            }
            if started.elapsed() >= within {
                // Request lines drown the rest: show what the server said besides them.
                let logs: Vec<String> = self
                    .logs()
                    .into_iter()
                    .filter(|line| !line.contains("\"request completed\""))
                    .collect();
                let tail = logs[logs.len().saturating_sub(40)..].join("\n");
                panic!("{series} is still {value:?} after {within:?}; last log lines:\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The Prometheus text from `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Polls the data export at `path` as the bearer of `token` until it is ready (at most
    /// 15 s); returns its status, with the `download_url`.
    pub async fn wait_for_export(&self, path: &str, token: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let status = self.get_json_with_token(path, token).await;
            if status["status"] == "ready" {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "never ready: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    }
}

/// The value of the first metric line starting with `series` (name and labels), if any.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Asserts that `response` has `status`; returns its JSON body.
pub async fn json_body(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body = response.text().await.expect("body");
    assert_eq!(actual, status, "body: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"))
}

/// Asserts a problem+json response with `status`, returning its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.expect("body");
    assert_eq!(actual, status, "body: {body}");
    assert_eq!(content_type, "application/problem+json", "body: {body}");
    let problem: Value = serde_json::from_str(&body).expect("problem json");
    assert_eq!(problem["status"], status);
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/problems/")),
        "{problem}"
    );
    assert!(problem["title"].is_string(), "{problem}");
    problem
}

/// The decoded (unverified) header and claims of a JWT.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = || -> Value {
        let part = parts.next().expect("jwt part");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    };
    let header = decode();
    let claims = decode();
    (header, claims)
}

/// A token signed with `secret` (HS256) carrying `header` and `claims`.
pub fn sign_jwt(header: &Value, claims: &Value, secret: &str) -> String {
    use hmac_sha256::sign;
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(message.as_bytes(), secret.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// HMAC-SHA256, built from sha2 so tests need no extra crate.
mod hmac_sha256 {
    use sha2::{Digest, Sha256};

    pub fn sign(message: &[u8], key: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let inner_key: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        let outer_key: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha256::new()
            .chain_update(&inner_key)
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(&outer_key)
            .chain_update(inner)
            .finalize()
            .into()
    }
}

/// A unique e-mail address per call, so tests never collide.
pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.org", uuid::Uuid::new_v4().simple())
}

/// Header lookup as text.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Parses `a=1; b=2` attribute lists of a Set-Cookie header.
pub fn cookie_attributes(set_cookie: &str) -> HashMap<String, String> {
    set_cookie
        .split(';')
        .map(|part| {
            let part = part.trim();
            match part.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), v.to_owned()),
                None => (part.to_ascii_lowercase(), String::new()),
            }
        })
        .collect()
}
