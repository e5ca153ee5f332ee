//! Configuration: embedded defaults → optional `outgrow.toml` → `OUTGROW_*` environment.
//!
//! Keys are flat and their names are a public contract (see the README): the TOML key
//! `database_url` is the environment variable `OUTGROW_DATABASE_URL`. Everything is validated
//! once, at boot; an unknown key or an invalid value stops start-up with a message naming the
//! key. Secrets are wrapped in [`SecretString`] so that printing the settings never shows them.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use anyhow::{Context, bail};
use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The prefix of every environment variable that configures Outgrow.
pub const ENV_PREFIX: &str = "OUTGROW_";

/// Variables with the prefix that are not settings: they steer the command line itself.
const NOT_SETTINGS: &[&str] = &["OUTGROW_CONFIG", "OUTGROW_ADMIN_PASSWORD"];
/// Prefixes reserved for the test harness and its service scripts (`OUTGROW_TEST_PG_PRIMARY`,
/// `OUTGROW_SERVICES_DIR`, …): a shell that sourced the services' env file can still run
/// `outgrow`.
const NOT_SETTINGS_PREFIXES: &[&str] = &["OUTGROW_TEST_", "OUTGROW_SERVICES_"];

/// Every setting, with its embedded default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address and port to serve HTTP on.
    pub listen: SocketAddr,
    /// Embedded database, generated keys, objects and mail live here.
    pub data_dir: PathBuf,
    /// The primary database; unset means the SQLite file in the data dir. May hold a password.
    pub database_url: Option<SecretString>,
    /// Connections per pool.
    pub database_max_connections: u32,
    /// How long a request waits for a pooled connection before failing with 503.
    #[serde(with = "humantime_serde")]
    pub database_acquire_timeout: Duration,
    /// Apply pending migrations when `serve` starts.
    pub auto_migrate: bool,
    /// PostgreSQL read replicas; reads go to a healthy one round robin. May hold passwords.
    pub database_replica_urls: Vec<SecretString>,
    /// Idle pooled connections are closed after this long.
    #[serde(with = "humantime_serde")]
    pub database_idle_timeout: Duration,
    /// PostgreSQL `statement_timeout` for every connection (0s = none).
    #[serde(with = "humantime_serde")]
    pub database_statement_timeout: Duration,
    /// After a write to a user's data, that user's data is read from the primary for this long
    /// (read-your-writes across replicas and instances). Must exceed `replica_max_lag`.
    #[serde(with = "humantime_serde")]
    pub read_your_writes_window: Duration,
    /// A replica further behind than this is skipped until it catches up.
    #[serde(with = "humantime_serde")]
    pub replica_max_lag: Duration,
    /// How often replicas are probed for health and lag.
    #[serde(with = "humantime_serde")]
    pub replica_probe_interval: Duration,
    /// Redis for the shared cache tier, sessions, rate limits and read-your-writes markers;
    /// unset = everything in-process. May hold a password.
    pub redis_url: Option<SecretString>,
    /// Seed nodes of a Redis Cluster (`redis://host:port`, any few of its nodes) to use instead
    /// of one Redis server: the client discovers the rest. Mutually exclusive with `redis_url`.
    /// May hold passwords.
    pub redis_cluster_urls: Vec<SecretString>,
    /// Prefix of every Redis key and channel (several deployments can share one Redis).
    pub redis_key_prefix: String,
    /// A Redis command slower than this counts as failed (and the caller falls back).
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// What rate limiting does while Redis is unreachable: `local`, `allow` or `deny`.
    pub rate_limit_on_redis_failure: RedisFailureMode,
    /// What a bearer token is worth while the session store (Redis) is unreachable:
    /// `token-only` accepts a validly signed, unexpired token without the revocation check;
    /// `deny` answers 503.
    pub auth_on_session_store_failure: SessionStoreFailureMode,
    /// `kid:secret,kid:secret`: the first signs, all verify (key rotation). Unset means a key
    /// generated once and kept in the data dir.
    pub jwt_keys: Option<SecretString>,
    /// Lifetime of access tokens (JWT).
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// Lifetime of a session: its refresh tokens and its browser cookie.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Name of the browser session cookie.
    pub session_cookie_name: String,
    /// Mark cookies `Secure`. Only a plain-HTTP development setup should turn this off.
    pub secure_cookies: bool,
    /// How many Argon2 computations may run at once (0 = one per CPU core). Each takes
    /// 19 MiB of memory, so this also bounds memory under a login flood.
    pub password_hash_concurrency: usize,
    /// CIDRs of reverse proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Redirect to HTTPS when a trusted proxy says the client came over plain HTTP.
    pub https_redirect: bool,
    /// Origins allowed by CORS (`*` allows any origin, without credentials).
    pub cors_origins: Vec<String>,
    /// `pretty` for people, `json` for log pipelines.
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `outgrow=debug,tower_http=info`.
    pub log_level: String,
    /// Requests running longer are answered with 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes; larger ones get 413.
    pub body_limit_bytes: usize,
    /// Requests slower than this are logged at WARN.
    #[serde(with = "humantime_serde")]
    pub slow_request_threshold: Duration,
    /// After SIGTERM, `/readyz` answers 503 for this long before the listener closes, so a
    /// load balancer stops sending new requests first.
    #[serde(with = "humantime_serde")]
    pub shutdown_delay: Duration,
    /// In-flight requests get this long to finish after the listener closes.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Requests per window for each client on most routes, as `count/window` (`600/1m`).
    pub rate_limit_default: RatePolicySetting,
    /// The stricter policy on `/api/v1/auth/*`, per client address.
    pub rate_limit_auth: RatePolicySetting,
    /// Entries the in-process cache holds at most.
    pub cache_capacity: u64,
    /// How long a user record stays cached.
    #[serde(with = "humantime_serde")]
    pub cache_user_ttl: Duration,
    /// With Redis: the longest an entry lives in an instance's own memory (L1). Bounds how long
    /// another instance's write can go unseen if an invalidation message is lost.
    #[serde(with = "humantime_serde")]
    pub cache_local_ttl: Duration,
    /// How long an instance trusts its own memory that a session is active, so that most
    /// bearer requests need no session lookup. Revocations reach every instance over the
    /// invalidation bus in milliseconds; this is the bound when that bus is absent (no Redis)
    /// or a message is lost. `0s` looks every session up on every request.
    #[serde(with = "humantime_serde")]
    pub session_cache_ttl: Duration,
    /// How often each instance writes the product views it counted (write-behind). A crash
    /// loses at most this long's views of the instance; a graceful stop loses none.
    #[serde(with = "humantime_serde")]
    pub view_count_flush_interval: Duration,
    /// Serve `/metrics` (Prometheus text format).
    pub metrics_enabled: bool,
    /// Where uploads and exports are kept: `file:///path` or `s3://bucket`; unset = the
    /// `objects` directory in the data dir.
    pub object_store_url: Option<String>,
    /// The S3 endpoint for `s3://` (an `http://` endpoint is accepted for local stores;
    /// path-style requests). Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
    /// and `AWS_REGION`.
    pub s3_endpoint: Option<String>,
    /// The largest accepted upload, in bytes (413 beyond).
    pub upload_limit_bytes: usize,
    /// Images with more pixels than this are refused (decompression bombs).
    pub upload_max_pixels: u64,
    /// How long a signed export download link stays valid.
    #[serde(with = "humantime_serde")]
    pub export_link_ttl: Duration,
    /// Data exports per user per window, as `count/window`.
    pub rate_limit_export: RatePolicySetting,
    /// The public base URL of the API (links in e-mails); unset = `http://<listen>`.
    pub public_url: Option<String>,
    /// `smtp://host:port` (or `smtps://`, with credentials if needed); unset = `.eml` files in
    /// `<data_dir>/mail`. May hold a password.
    pub smtp_url: Option<SecretString>,
    /// The sender of every e-mail.
    pub mail_from: String,
    /// Jobs a worker runs at once.
    pub worker_concurrency: usize,
    /// Queues a worker serves.
    pub worker_queues: Vec<String>,
    /// A claimed job returns to the queue if its worker stops renewing the claim for this long.
    #[serde(with = "humantime_serde")]
    pub job_lease: Duration,
    /// Workers look for due jobs at least this often (PostgreSQL also wakes them on enqueue).
    #[serde(with = "humantime_serde")]
    pub job_poll_interval: Duration,
    /// First retry delay of a failed job; doubles per attempt (±20 % jitter).
    #[serde(with = "humantime_serde")]
    pub job_backoff_base: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub job_backoff_max: Duration,
    /// When expired sessions are deleted (cron, UTC; a leading sixth field gives seconds).
    pub session_cleanup_schedule: String,
    /// When finished jobs older than `job_retention` are deleted (cron, UTC).
    pub job_cleanup_schedule: String,
    /// How long done and cancelled jobs are kept (dead ones stay until handled).
    #[serde(with = "humantime_serde")]
    pub job_retention: Duration,
    /// PostgreSQL databases holding orders and events, sharded by user through 1,024 virtual
    /// buckets; unset = the primary is the only shard. May hold passwords.
    pub database_shard_urls: Vec<SecretString>,
    /// How often an instance re-reads the shard map (bucket moves take effect after this).
    #[serde(with = "humantime_serde")]
    pub shard_map_refresh: Duration,
    /// `Cache-Control: public, max-age` of public catalog responses.
    #[serde(with = "humantime_serde")]
    pub catalog_max_age: Duration,
    /// How long a product stays cached (every admin write and stock change invalidates it).
    #[serde(with = "humantime_serde")]
    pub cache_product_ttl: Duration,
    /// How long a catalog listing page stays cached; admin writes retire every page at once,
    /// stock shown in listings may lag orders by up to this long.
    #[serde(with = "humantime_serde")]
    pub cache_catalog_page_ttl: Duration,
    /// A stock reservation whose order was not confirmed is reconciled (confirmed or released)
    /// this long after it was made. Must exceed `request_timeout`.
    #[serde(with = "humantime_serde")]
    pub order_reconcile_after: Duration,
    /// How long an `Idempotency-Key` is remembered.
    #[serde(with = "humantime_serde")]
    pub idempotency_key_ttl: Duration,
    /// Events waiting to be written, at most; beyond, `POST /events` answers 503.
    pub events_queue_capacity: usize,
    /// Events written per batch (one multi-row insert), at most.
    pub events_batch_max: usize,
    /// Events older than this (or more than an hour ahead) are refused with 400.
    #[serde(with = "humantime_serde")]
    pub events_max_age: Duration,
    /// When the analytics roll-up recomputes recent hours (cron, UTC).
    pub analytics_rollup_schedule: String,
    /// How many recent hours each roll-up recomputes.
    pub analytics_rollup_hours: u32,
    /// When store maintenance runs: future event partitions, expired idempotency keys (cron,
    /// UTC).
    pub store_maintenance_schedule: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 20,
            database_acquire_timeout: Duration::from_secs(2),
            auto_migrate: true,
            database_replica_urls: Vec::new(),
            database_idle_timeout: Duration::from_secs(30),
            database_statement_timeout: Duration::from_secs(10),
            read_your_writes_window: Duration::from_secs(5),
            replica_max_lag: Duration::from_secs(1),
            replica_probe_interval: Duration::from_secs(1),
            redis_url: None,
            redis_cluster_urls: Vec::new(),
            redis_key_prefix: "outgrow:".into(),
            redis_timeout: Duration::from_millis(250),
            rate_limit_on_redis_failure: RedisFailureMode::Local,
            auth_on_session_store_failure: SessionStoreFailureMode::TokenOnly,
            jwt_keys: None,
            access_token_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            session_cookie_name: "outgrow_session".into(),
            secure_cookies: true,
            password_hash_concurrency: 0,
            trusted_proxies: Vec::new(),
            https_redirect: true,
            cors_origins: Vec::new(),
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            request_timeout: Duration::from_secs(30),
            body_limit_bytes: 1024 * 1024,
            slow_request_threshold: Duration::from_millis(500),
            shutdown_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(30),
            rate_limit_default: RatePolicySetting::new(600, Duration::from_secs(60)),
            rate_limit_auth: RatePolicySetting::new(20, Duration::from_secs(60)),
            cache_capacity: 100_000,
            cache_user_ttl: Duration::from_secs(60),
            cache_local_ttl: Duration::from_secs(5),
            session_cache_ttl: Duration::from_secs(1),
            view_count_flush_interval: Duration::from_secs(5),
            metrics_enabled: true,
            object_store_url: None,
            s3_endpoint: None,
            upload_limit_bytes: 10 * 1024 * 1024,
            upload_max_pixels: 50_000_000,
            export_link_ttl: Duration::from_secs(24 * 3600),
            rate_limit_export: RatePolicySetting::new(10, Duration::from_secs(3600)),
            public_url: None,
            smtp_url: None,
            mail_from: "Outgrow <no-reply@outgrow.localhost>".into(),
            worker_concurrency: 4,
            worker_queues: vec!["default".into(), "mail".into()],
            job_lease: Duration::from_secs(30),
            job_poll_interval: Duration::from_secs(1),
            job_backoff_base: Duration::from_secs(10),
            job_backoff_max: Duration::from_secs(3600),
            session_cleanup_schedule: "17 * * * *".into(),
            job_cleanup_schedule: "43 3 * * *".into(),
            job_retention: Duration::from_secs(7 * 24 * 3600),
            database_shard_urls: Vec::new(),
            shard_map_refresh: Duration::from_secs(5),
            catalog_max_age: Duration::from_secs(60),
            cache_product_ttl: Duration::from_secs(300),
            cache_catalog_page_ttl: Duration::from_secs(10),
            order_reconcile_after: Duration::from_secs(120),
            idempotency_key_ttl: Duration::from_secs(24 * 3600),
            events_queue_capacity: 100_000,
            events_batch_max: 5_000,
            events_max_age: Duration::from_secs(7 * 24 * 3600),
            analytics_rollup_schedule: "* * * * *".into(),
            analytics_rollup_hours: 3,
            store_maintenance_schedule: "23 * * * *".into(),
        }
    }
}

/// What authentication does while the session store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionStoreFailureMode {
    /// Accept validly signed, unexpired access tokens without the revocation check (a
    /// revoked session's tokens work until they expire, at most `access_token_ttl`).
    TokenOnly,
    /// Answer 503 to every authenticated request.
    Deny,
}

/// The two log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line, with the span fields (request id) on each.
    Json,
}

/// What the shared rate limiter does when Redis cannot be reached (see `ratelimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailureMode {
    /// Limit with this instance's in-process limiter (per instance, so N instances allow up
    /// to N times the limit) — the default: keeps protection without a single point of failure.
    Local,
    /// Let every request through (fail open).
    Allow,
    /// Refuse every limited request with 429 (fail closed).
    Deny,
}

/// A rate policy as written in configuration: `count/window`, e.g. `600/1m` or `10/1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicySetting {
    /// Requests allowed per window (also the burst).
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

impl RatePolicySetting {
    /// A policy of `limit` requests per `window`.
    pub const fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }
}

impl FromStr for RatePolicySetting {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (count, window) = input
            .split_once('/')
            .ok_or_else(|| format!("{input:?} is not of the form count/window, e.g. 600/1m"))?;
        let limit: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("{count:?} is not a whole number of requests"))?;
        let window = humantime::parse_duration(window.trim())
            .map_err(|error| format!("{window:?} is not a duration: {error}"))?;
        if limit == 0 || window.is_zero() {
            return Err("count and window must both be above zero".into());
        }
        Ok(Self { limit, window })
    }
}

impl<'de> Deserialize<'de> for RatePolicySetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Keys whose environment form is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "trusted_proxies",
    "cors_origins",
    "database_replica_urls",
    "database_shard_urls",
    "redis_cluster_urls",
    "worker_queues",
];

impl Settings {
    /// Loads the layers: defaults, then `file` (required when given explicitly, else
    /// `outgrow.toml` in the working directory when present), then the environment.
    pub fn load(file: Option<PathBuf>) -> anyhow::Result<Self> {
        Self::load_from(file, std::env::vars().collect())
    }

    /// [`Settings::load`] with an explicit environment, for tests.
    pub fn load_from(file: Option<PathBuf>, env: HashMap<String, String>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder();
        builder = match &file {
            Some(path) => builder.add_source(config::File::from(path.as_path()).required(true)),
            None => builder.add_source(config::File::with_name("outgrow.toml").required(false)),
        };
        let settings_env = settings_env(env)?;
        let mut environment = config::Environment::default()
            .try_parsing(true)
            .list_separator(",")
            .source(Some(settings_env));
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        let merged = builder
            .add_source(environment)
            .build()
            .context("reading configuration")?;
        let settings: Settings = merged
            .try_deserialize()
            .map_err(|error| anyhow::anyhow!("invalid configuration: {}", explain(&error.to_string())))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Cross-field checks that serde cannot express.
    fn validate(&self) -> anyhow::Result<()> {
        let checks: [(&str, bool, &str); 6] = [
            (
                "database_max_connections",
                self.database_max_connections == 0,
                "must be at least 1",
            ),
            (
                "access_token_ttl",
                self.access_token_ttl < Duration::from_secs(10),
                "must be at least 10s",
            ),
            (
                "session_ttl",
                self.session_ttl <= self.access_token_ttl,
                "must be longer than access_token_ttl",
            ),
            (
                "request_timeout",
                self.request_timeout.is_zero(),
                "must be above zero",
            ),
            (
                "body_limit_bytes",
                self.body_limit_bytes < 1024,
                "must be at least 1024",
            ),
            (
                "session_cookie_name",
                !is_cookie_token(&self.session_cookie_name),
                "must be a cookie name token (letters, digits, _ and -)",
            ),
        ];
        for (key, failed, message) in checks {
            if failed {
                bail!(
                    "invalid configuration: {key} ({}{}) {message}",
                    ENV_PREFIX,
                    key.to_uppercase()
                );
            }
        }
        let postgres = self.database_url.as_ref().is_some_and(|url| {
            let url = url.expose_secret();
            url.starts_with("postgres://") || url.starts_with("postgresql://")
        });
        if postgres && self.jwt_keys.is_none() {
            bail!(
                "invalid configuration: jwt_keys (OUTGROW_JWT_KEYS) must be set with a PostgreSQL database: every instance must sign with the same keys"
            );
        }
        if !self.database_replica_urls.is_empty() && !postgres {
            bail!(
                "invalid configuration: database_replica_urls (OUTGROW_DATABASE_REPLICA_URLS) needs a postgres:// database_url"
            );
        }
        if self.read_your_writes_window <= self.replica_max_lag {
            bail!(
                "invalid configuration: read_your_writes_window (OUTGROW_READ_YOUR_WRITES_WINDOW) must be longer than replica_max_lag (OUTGROW_REPLICA_MAX_LAG)"
            );
        }
        if self.redis_url.is_some() && !self.redis_cluster_urls.is_empty() {
            bail!(
                "invalid configuration: redis_url (OUTGROW_REDIS_URL) and redis_cluster_urls (OUTGROW_REDIS_CLUSTER_URLS) are mutually exclusive: set redis_url for one Redis server, redis_cluster_urls for a Redis Cluster"
            );
        }
        for (index, url) in self.redis_cluster_urls.iter().enumerate() {
            // The URL may hold a password: name its position, never its text.
            if !is_redis_node_url(url.expose_secret()) {
                bail!(
                    "invalid configuration: redis_cluster_urls (OUTGROW_REDIS_CLUSTER_URLS) entry {} is not a redis://host:port URL of database 0 (a Redis Cluster has no other database)",
                    index + 1
                );
            }
        }
        if self.redis_key_prefix.is_empty() || self.redis_key_prefix.contains(['{', '}']) {
            bail!(
                "invalid configuration: redis_key_prefix (OUTGROW_REDIS_KEY_PREFIX) must be non-empty and without braces (they are hash tags)"
            );
        }
        if self.worker_concurrency == 0 || self.worker_queues.is_empty() {
            bail!(
                "invalid configuration: worker_concurrency (OUTGROW_WORKER_CONCURRENCY) must be at least 1 and worker_queues (OUTGROW_WORKER_QUEUES) not empty"
            );
        }
        if let Err(error) = crate::jobs::parse_schedule(&self.session_cleanup_schedule) {
            bail!(
                "invalid configuration: session_cleanup_schedule (OUTGROW_SESSION_CLEANUP_SCHEDULE) is not a cron pattern: {error}"
            );
        }
        if let Err(error) = crate::jobs::parse_schedule(&self.job_cleanup_schedule) {
            bail!(
                "invalid configuration: job_cleanup_schedule (OUTGROW_JOB_CLEANUP_SCHEDULE) is not a cron pattern: {error}"
            );
        }
        if !self.database_shard_urls.is_empty() && !postgres {
            bail!(
                "invalid configuration: database_shard_urls (OUTGROW_DATABASE_SHARD_URLS) needs a postgres:// database_url"
            );
        }
        if self.database_shard_urls.len() > 256 {
            bail!(
                "invalid configuration: database_shard_urls (OUTGROW_DATABASE_SHARD_URLS) lists more than 256 shards"
            );
        }
        if self.order_reconcile_after <= self.request_timeout {
            bail!(
                "invalid configuration: order_reconcile_after (OUTGROW_ORDER_RECONCILE_AFTER) must be longer than request_timeout (OUTGROW_REQUEST_TIMEOUT): a reservation is only reconciled once its request is over"
            );
        }
        if self.events_queue_capacity < 500 || self.events_batch_max == 0 {
            bail!(
                "invalid configuration: events_queue_capacity (OUTGROW_EVENTS_QUEUE_CAPACITY) must hold one full request (500 events) and events_batch_max (OUTGROW_EVENTS_BATCH_MAX) be at least 1"
            );
        }
        if self.analytics_rollup_hours == 0 || self.analytics_rollup_hours > 24 * 31 {
            bail!(
                "invalid configuration: analytics_rollup_hours (OUTGROW_ANALYTICS_ROLLUP_HOURS) must be 1..=744"
            );
        }
        for (key, pattern) in [
            ("analytics_rollup_schedule", &self.analytics_rollup_schedule),
            ("store_maintenance_schedule", &self.store_maintenance_schedule),
        ] {
            if let Err(error) = crate::jobs::parse_schedule(pattern) {
                bail!(
                    "invalid configuration: {key} ({ENV_PREFIX}{}) is not a cron pattern: {error}",
                    key.to_uppercase()
                );
            }
        }
        if self.job_lease < Duration::from_secs(1) {
            bail!("invalid configuration: job_lease (OUTGROW_JOB_LEASE) must be at least 1s");
        }
        if let Some(origin) = self.cors_origins.iter().find(|origin| !is_origin(origin)) {
            bail!(
                "invalid configuration: cors_origins (OUTGROW_CORS_ORIGINS): {origin:?} is not `*` or an origin such as https://shop.example"
            );
        }
        Ok(())
    }

    /// The base URL for links sent to users.
    pub fn public_base_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// Where the embedded SQLite database lives.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("outgrow.sqlite3")
    }
}

/// `*`, or `scheme://host[:port]` with nothing after it (browsers send origins in exactly
/// that form, so anything else could never match).
fn is_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

fn is_cookie_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `redis://[user:password@]host[:port][/0]`: the form a cluster seed node takes (TLS is not
/// compiled in, and a cluster serves database 0 only).
fn is_redis_node_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("redis://") else {
        return false;
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    // `[v6 address]:port` or `host:port`, the port optional.
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, rest)) => match rest.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port > 0));
    !host.is_empty() && port_ok && matches!(path, "" | "0")
}

/// Keeps the `OUTGROW_*` variables that are settings, lower-cased without the prefix, and
/// refuses unknown ones so that a typo never silently leaves a default in force.
fn settings_env(env: HashMap<String, String>) -> anyhow::Result<HashMap<String, String>> {
    let known = known_keys();
    let mut settings = HashMap::new();
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if NOT_SETTINGS.contains(&name.as_str())
            || NOT_SETTINGS_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        {
            continue;
        }
        let key = key.to_lowercase();
        if !known.contains(&key.as_str()) {
            bail!("invalid configuration: unknown environment variable {name} (see the README for the keys)");
        }
        settings.insert(key, value);
    }
    Ok(settings)
}

/// The setting names, read off the `Settings` struct itself (serde hands its field list to
/// the deserializer), so the list of accepted variables cannot drift from the struct.
fn known_keys() -> &'static [&'static str] {
    use serde::de::{Error, Visitor, value};

    struct FieldProbe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for FieldProbe<'_> {
        type Error = value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Error::custom("field probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Error::custom("field probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    static FIELDS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut fields: &'static [&'static str] = &[];
        let _probe_always_fails = Settings::deserialize(FieldProbe(&mut fields));
        fields
    })
}

/// Adds the environment-variable spelling next to the key that `config` names.
fn explain(message: &str) -> String {
    match message.split('`').nth(1) {
        Some(key) if known_keys().contains(&key) => {
            format!(
                "{message} (environment variable {ENV_PREFIX}{})",
                key.to_uppercase()
            )
        }
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let settings = Settings::load_from(None, env(&[])).expect("defaults are valid");
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.access_token_ttl, Duration::from_secs(900));
    }

    #[test]
    fn environment_overrides_defaults() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("OUTGROW_LISTEN", "0.0.0.0:9000"),
                ("OUTGROW_ACCESS_TOKEN_TTL", "5m"),
                ("OUTGROW_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1/32"),
                ("OUTGROW_RATE_LIMIT_AUTH", "5/10s"),
                ("OUTGROW_JWT_KEYS", "k1:0123456789abcdef0123456789abcdef"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .expect("valid");
        assert_eq!(settings.listen.port(), 9000);
        assert_eq!(settings.access_token_ttl, Duration::from_secs(300));
        assert_eq!(settings.trusted_proxies.len(), 2);
        assert_eq!(
            settings.rate_limit_auth,
            RatePolicySetting::new(5, Duration::from_secs(10))
        );
        assert!(settings.jwt_keys.expect("set").expose_secret().starts_with("k1:"));
    }

    #[test]
    fn a_file_sets_values_and_the_environment_wins_over_it() {
        let dir = std::env::temp_dir().join(format!("outgrow-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("outgrow.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:7000\"\nlog_level = \"debug\"\n").expect("write");
        let settings = Settings::load_from(Some(file), env(&[("OUTGROW_LOG_LEVEL", "warn")])).expect("valid");
        assert_eq!(settings.listen.port(), 7000);
        assert_eq!(settings.log_level, "warn");
    }

    #[test]
    fn an_unknown_environment_variable_is_an_error_naming_it() {
        let error = Settings::load_from(None, env(&[("OUTGROW_LISTN", "x")])).expect_err("typo");
        assert!(error.to_string().contains("OUTGROW_LISTN"), "{error}");
    }

    #[test]
    fn the_test_harness_variables_are_not_settings() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("OUTGROW_TEST_PG_PRIMARY", "postgres://x"),
                ("OUTGROW_SERVICES_DIR", "/tmp/x"),
            ]),
        );
        assert!(settings.is_ok());
    }

    #[test]
    fn an_unknown_file_key_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("outgrow-config-unknown-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("outgrow.toml");
        std::fs::write(&file, "lissen = \"127.0.0.1:7000\"\n").expect("write");
        let error = Settings::load_from(Some(file), env(&[])).expect_err("typo");
        assert!(error.to_string().contains("lissen"), "{error}");
    }

    #[test]
    fn an_invalid_value_is_an_error_naming_the_key() {
        let error = Settings::load_from(None, env(&[("OUTGROW_REQUEST_TIMEOUT", "soon")])).expect_err("bad");
        assert!(error.to_string().contains("request_timeout"), "{error}");
        let error =
            Settings::load_from(None, env(&[("OUTGROW_DATABASE_MAX_CONNECTIONS", "0")])).expect_err("bad");
        assert!(
            error.to_string().contains("OUTGROW_DATABASE_MAX_CONNECTIONS"),
            "{error}"
        );
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let settings = Settings::load_from(
            None,
            env(&[("OUTGROW_JWT_KEYS", "k1:topsecretvalue-topsecretvalue-12")]),
        )
        .expect("valid");
        assert!(!format!("{settings:?}").contains("topsecretvalue"));
    }

    #[test]
    fn postgres_requires_shared_jwt_keys_and_replicas_require_postgres() {
        let pg = ("OUTGROW_DATABASE_URL", "postgres://u:p@db/outgrow");
        let error = Settings::load_from(None, env(&[pg])).expect_err("keys required");
        assert!(error.to_string().contains("OUTGROW_JWT_KEYS"), "{error}");
        let keys = ("OUTGROW_JWT_KEYS", "k1:0123456789abcdef0123456789abcdef");
        let replicas = (
            "OUTGROW_DATABASE_REPLICA_URLS",
            "postgres://u:p@r1/outgrow,postgres://u:p@r2/outgrow",
        );
        let settings = Settings::load_from(None, env(&[pg, keys, replicas])).expect("valid");
        assert_eq!(settings.database_replica_urls.len(), 2);
        let error = Settings::load_from(None, env(&[keys, replicas])).expect_err("replicas need postgres");
        assert!(error.to_string().contains("database_replica_urls"), "{error}");
        assert!(
            !format!("{settings:?}").contains("u:p@"),
            "URLs with passwords are secrets"
        );
    }

    #[test]
    fn cluster_seed_nodes_parse_and_exclude_a_single_redis_url() {
        let seeds = (
            "OUTGROW_REDIS_CLUSTER_URLS",
            "redis://127.0.0.1:7000,redis://:secret-pass@10.0.0.2:7001,redis://cache-2",
        );
        let settings = Settings::load_from(None, env(&[seeds])).expect("valid");
        assert_eq!(settings.redis_cluster_urls.len(), 3);
        assert!(!format!("{settings:?}").contains("secret-pass"));

        let both = Settings::load_from(
            None,
            env(&[seeds, ("OUTGROW_REDIS_URL", "redis://127.0.0.1:6379")]),
        )
        .expect_err("exclusive");
        assert!(error_names(&both, "OUTGROW_REDIS_CLUSTER_URLS") && error_names(&both, "OUTGROW_REDIS_URL"));
    }

    #[test]
    fn a_bad_cluster_seed_is_named_by_position_without_its_text() {
        for bad in [
            "http://127.0.0.1:7000",
            "redis://:pw-in-url@127.0.0.1:notaport",
            "redis://127.0.0.1:7000/3",
            "redis://",
        ] {
            let error = Settings::load_from(
                None,
                env(&[(
                    "OUTGROW_REDIS_CLUSTER_URLS",
                    &format!("redis://127.0.0.1:7000,{bad}"),
                )]),
            )
            .expect_err(bad);
            assert!(error.to_string().contains("entry 2"), "{error}");
            assert!(!error.to_string().contains("pw-in-url"), "{error}");
        }
    }

    fn error_names(error: &anyhow::Error, name: &str) -> bool {
        error.to_string().contains(name)
    }

    #[test]
    fn failure_modes_parse() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("OUTGROW_RATE_LIMIT_ON_REDIS_FAILURE", "deny"),
                ("OUTGROW_AUTH_ON_SESSION_STORE_FAILURE", "deny"),
            ]),
        )
        .expect("valid");
        assert_eq!(settings.rate_limit_on_redis_failure, RedisFailureMode::Deny);
        assert_eq!(
            settings.auth_on_session_store_failure,
            SessionStoreFailureMode::Deny
        );
        assert!(Settings::load_from(None, env(&[("OUTGROW_RATE_LIMIT_ON_REDIS_FAILURE", "maybe")])).is_err());
    }

    #[test]
    fn cors_origins_must_be_origins() {
        let ok = Settings::load_from(
            None,
            env(&[("OUTGROW_CORS_ORIGINS", "https://a.example,http://b.example:8080")]),
        );
        assert_eq!(ok.expect("valid").cors_origins.len(), 2);
        for bad in [
            "a.example",
            "https://a.example/path",
            "ftp://a.example",
            "https://",
        ] {
            let error = Settings::load_from(None, env(&[("OUTGROW_CORS_ORIGINS", bad)])).expect_err(bad);
            assert!(error.to_string().contains("cors_origins"), "{error}");
        }
    }

    #[test]
    fn every_setting_is_accepted_from_the_environment() {
        let keys = known_keys();
        assert!(keys.len() >= 27, "{keys:?}");
        for key in [
            "listen",
            "jwt_keys",
            "rate_limit_auth",
            "metrics_enabled",
            "cache_user_ttl",
        ] {
            assert!(keys.contains(&key), "{key}");
        }
    }

    #[test]
    fn rate_policies_parse_from_count_and_window() {
        assert_eq!(
            "10/1h".parse(),
            Ok(RatePolicySetting::new(10, Duration::from_secs(3600)))
        );
        assert!("0/1m".parse::<RatePolicySetting>().is_err());
        assert!("ten/1m".parse::<RatePolicySetting>().is_err());
        assert!("10".parse::<RatePolicySetting>().is_err());
    }
}
