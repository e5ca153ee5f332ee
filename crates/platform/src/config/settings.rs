//! The settings themselves: one table of every key with its type, its embedded default and
//! the doc comment that the README's list of keys follows.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use ipnet::IpNet;
use secrecy::SecretString;
use serde::Deserialize;

use super::{LogFormat, RatePolicySetting, RedisFailureMode, SessionStoreFailureMode};

/// Declares [`Settings`] and its [`Default`] from one table, so a key's doc, type and default
/// stand on adjacent lines instead of eighty lines apart. `as "humantime_serde"` reads the key
/// as a duration in words (`30s`, `5m`, `1h`).
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $type:ty $(as $with:literal)? = $default:expr,
    )*) => {
        /// Every setting, with its embedded default.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $(
                $(#[doc = $doc])*
                $(#[serde(with = $with)])?
                pub $name: $type,
            )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Self {
                    $($name: $default,)*
                }
            }
        }
    };
}

settings! {
    /// Address and port to serve HTTP on.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)),
    /// Embedded database, generated keys, objects and mail live here.
    data_dir: PathBuf = PathBuf::from("./data"),
    /// The primary database; unset means the SQLite file in the data dir. May hold a password.
    database_url: Option<SecretString> = None,
    /// Connections per pool.
    database_max_connections: u32 = 20,
    /// How long a request waits for a pooled connection before failing with 503.
    database_acquire_timeout: Duration as "humantime_serde" = Duration::from_secs(2),
    /// Apply pending migrations when `serve` starts.
    auto_migrate: bool = true,
    /// PostgreSQL read replicas; reads go to a healthy one round robin. May hold passwords.
    database_replica_urls: Vec<SecretString> = Vec::new(),
    /// Idle pooled connections are closed after this long.
    database_idle_timeout: Duration as "humantime_serde" = Duration::from_secs(30),
    /// PostgreSQL `statement_timeout` for every connection (0s = none).
    database_statement_timeout: Duration as "humantime_serde" = Duration::from_secs(10),
    /// After a write to a user's data, that user's data is read from the primary for this long
    /// (read-your-writes across replicas and instances). Must exceed `replica_max_lag`.
    read_your_writes_window: Duration as "humantime_serde" = Duration::from_secs(5),
    /// A replica further behind than this is skipped until it catches up.
    replica_max_lag: Duration as "humantime_serde" = Duration::from_secs(1),
    /// How often replicas are probed for health and lag.
    replica_probe_interval: Duration as "humantime_serde" = Duration::from_secs(1),
    /// Redis for the shared cache tier, sessions, rate limits and read-your-writes markers;
    /// unset = everything in-process. May hold a password.
    redis_url: Option<SecretString> = None,
    /// Seed nodes of a Redis Cluster (`redis://host:port`, any few of its nodes) to use instead
    /// of one Redis server: the client discovers the rest. Mutually exclusive with `redis_url`.
    /// May hold passwords.
    redis_cluster_urls: Vec<SecretString> = Vec::new(),
    /// Prefix of every Redis key and channel (several deployments can share one Redis).
    redis_key_prefix: String = "outgrow:".into(),
    /// A Redis command slower than this counts as failed (and the caller falls back).
    redis_timeout: Duration as "humantime_serde" = Duration::from_millis(250),
    /// What rate limiting does while Redis is unreachable: `local`, `allow` or `deny`.
    rate_limit_on_redis_failure: RedisFailureMode = RedisFailureMode::Local,
    /// What a bearer token is worth while the session store (Redis) is unreachable:
    /// `token-only` accepts a validly signed, unexpired token without the revocation check;
    /// `deny` answers 503.
    auth_on_session_store_failure: SessionStoreFailureMode = SessionStoreFailureMode::TokenOnly,
    /// `kid:secret,kid:secret`: the first signs, all verify (key rotation). Unset means a key
    /// generated once and kept in the data dir.
    jwt_keys: Option<SecretString> = None,
    /// Lifetime of access tokens (JWT).
    access_token_ttl: Duration as "humantime_serde" = Duration::from_secs(15 * 60),
    /// Lifetime of a session: its refresh tokens and its browser cookie.
    session_ttl: Duration as "humantime_serde" = Duration::from_secs(30 * 24 * 3600),
    /// Name of the browser session cookie.
    session_cookie_name: String = "outgrow_session".into(),
    /// Mark cookies `Secure`. Only a plain-HTTP development setup should turn this off.
    secure_cookies: bool = true,
    /// How many Argon2 computations may run at once (0 = one per CPU core). Each takes
    /// 19 MiB of memory, so this also bounds memory under a login flood.
    password_hash_concurrency: usize = 0,
    /// CIDRs of reverse proxies whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed.
    trusted_proxies: Vec<IpNet> = Vec::new(),
    /// Redirect to HTTPS when a trusted proxy says the client came over plain HTTP.
    https_redirect: bool = true,
    /// Origins allowed by CORS (`*` allows any origin, without credentials).
    cors_origins: Vec<String> = Vec::new(),
    /// `pretty` for people, `json` for log pipelines.
    log_format: LogFormat = LogFormat::Pretty,
    /// A `tracing` filter such as `info` or `outgrow=debug,tower_http=info`.
    log_level: String = "info".into(),
    /// A connection must send each request head (request line and headers) within this long,
    /// counted from when the server starts waiting for it, so it also closes idle keep-alive
    /// connections: keep a proxy's upstream keep-alive timeout below it.
    header_read_timeout: Duration as "humantime_serde" = Duration::from_secs(30),
    /// Client connections open at once at most; more wait in the listen backlog.
    max_connections: usize = 4096,
    /// Requests running longer are answered with 408.
    request_timeout: Duration as "humantime_serde" = Duration::from_secs(30),
    /// Largest accepted request body, in bytes; larger ones get 413.
    body_limit_bytes: usize = 1024 * 1024,
    /// Requests slower than this are logged at WARN.
    slow_request_threshold: Duration as "humantime_serde" = Duration::from_millis(500),
    /// After SIGTERM, `/readyz` answers 503 for this long before the listener closes, so a
    /// load balancer stops sending new requests first.
    shutdown_delay: Duration as "humantime_serde" = Duration::ZERO,
    /// In-flight requests get this long to finish after the listener closes.
    shutdown_timeout: Duration as "humantime_serde" = Duration::from_secs(30),
    /// Requests per window for each client on most routes, as `count/window` (`600/1m`).
    rate_limit_default: RatePolicySetting = RatePolicySetting::new(600, Duration::from_secs(60)),
    /// The stricter policy on `/api/v1/auth/*`, per client address.
    rate_limit_auth: RatePolicySetting = RatePolicySetting::new(20, Duration::from_secs(60)),
    /// Sign-in attempts per account (from any address) before each further one must wait.
    login_free_attempts_per_account: u32 = 5,
    /// Failed sign-in attempts per client address before each further one must wait.
    login_free_attempts_per_address: u32 = 20,
    /// The first sign-in delay once the free attempts are used; each attempt doubles it.
    login_delay_base: Duration as "humantime_serde" = Duration::from_secs(1),
    /// The longest sign-in delay.
    login_delay_max: Duration as "humantime_serde" = Duration::from_secs(15 * 60),
    /// Sign-in attempts are forgotten after this long without one.
    login_attempts_forget_after: Duration as "humantime_serde" = Duration::from_secs(3600),
    /// Entries the in-process cache holds at most.
    cache_capacity: u64 = 100_000,
    /// How long a user record stays cached.
    cache_user_ttl: Duration as "humantime_serde" = Duration::from_secs(60),
    /// With Redis: the longest an entry lives in an instance's own memory (L1). Bounds how long
    /// another instance's write can go unseen if an invalidation message is lost.
    cache_local_ttl: Duration as "humantime_serde" = Duration::from_secs(5),
    /// How long an instance trusts its own memory that a session is active, so that most
    /// bearer requests need no session lookup. Revocations reach every instance over the
    /// invalidation bus in milliseconds; this is the bound when that bus is absent (no Redis)
    /// or a message is lost. `0s` looks every session up on every request.
    session_cache_ttl: Duration as "humantime_serde" = Duration::from_secs(1),
    /// How often each instance writes the product views it counted (write-behind). A crash
    /// loses at most this long's views of the instance; a graceful stop loses none.
    view_count_flush_interval: Duration as "humantime_serde" = Duration::from_secs(5),
    /// Serve `/metrics` (Prometheus text format).
    metrics_enabled: bool = true,
    /// Client addresses (CIDRs) `/metrics` answers; others get 404. The client address is the
    /// one `X-Forwarded-For` yields behind a trusted proxy, so a public client is refused even
    /// through a proxy on a private network. Default: loopback and private networks.
    metrics_allowed_networks: Vec<IpNet> = [
        "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7",
    ]
    .iter()
    .map(|net| net.parse().expect("a valid CIDR"))
    .collect(),
    /// Sentry (or compatible) DSN: panics and 5xx answers are reported there; unset = error
    /// tracking off. A secret (it authorises sending events).
    sentry_dsn: Option<SecretString> = None,
    /// The environment error reports are filed under.
    sentry_environment: String = "production".into(),
    /// Where uploads and exports are kept: `file:///path` or `s3://bucket`; unset = the
    /// `objects` directory in the data dir.
    object_store_url: Option<String> = None,
    /// The S3 endpoint for `s3://` (an `http://` endpoint is accepted for local stores;
    /// path-style requests). Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
    /// and `AWS_REGION`.
    s3_endpoint: Option<String> = None,
    /// The longest one S3 request may take, body included; a failed idempotent request is
    /// retried (at most 3 times) only within a quarter more than this from the first attempt.
    s3_request_timeout: Duration as "humantime_serde" = Duration::from_secs(20),
    /// The largest accepted upload, in bytes (413 beyond).
    upload_limit_bytes: usize = 10 * 1024 * 1024,
    /// Images with more pixels than this are refused (decompression bombs).
    upload_max_pixels: u64 = 50_000_000,
    /// How long a signed export download link stays valid.
    export_link_ttl: Duration as "humantime_serde" = Duration::from_secs(24 * 3600),
    /// Data exports per user per window, as `count/window`.
    rate_limit_export: RatePolicySetting = RatePolicySetting::new(10, Duration::from_secs(3600)),
    /// Orders placed per user per window (`POST /api/v1/orders`, the checkout form), as
    /// `count/window`: a flood of orders reserves stock nobody will buy.
    rate_limit_order: RatePolicySetting = RatePolicySetting::new(30, Duration::from_secs(60)),
    /// The public base URL of the API (links in e-mails); unset = `http://<listen>`.
    public_url: Option<String> = None,
    /// `smtp://host:port` (or `smtps://`, with credentials if needed); unset = `.eml` files in
    /// `<data_dir>/mail`. May hold a password.
    smtp_url: Option<SecretString> = None,
    /// The longest an e-mail's SMTP session may take, connection to `QUIT` (a silent or endless
    /// server fails the run after this long, not never).
    smtp_timeout: Duration as "humantime_serde" = Duration::from_secs(30),
    /// PEM certificates trusted for the relay's TLS besides the public roots (a private CA).
    smtp_ca_file: Option<std::path::PathBuf> = None,
    /// The sender of every e-mail.
    mail_from: String = "Outgrow <no-reply@outgrow.localhost>".into(),
    /// Jobs a worker runs at once.
    worker_concurrency: usize = 4,
    /// Queues a worker serves.
    worker_queues: Vec<String> = vec!["default".into(), "mail".into()],
    /// A claimed job returns to the queue if its worker stops renewing the claim for this long.
    job_lease: Duration as "humantime_serde" = Duration::from_secs(30),
    /// Workers look for due jobs at least this often (PostgreSQL also wakes them on enqueue).
    job_poll_interval: Duration as "humantime_serde" = Duration::from_secs(1),
    /// First retry delay of a failed job; doubles per attempt (±20 % jitter).
    job_backoff_base: Duration as "humantime_serde" = Duration::from_secs(10),
    /// Longest retry delay.
    job_backoff_max: Duration as "humantime_serde" = Duration::from_secs(3600),
    /// When expired sessions are deleted (cron, UTC; a leading sixth field gives seconds).
    session_cleanup_schedule: String = "17 * * * *".into(),
    /// When finished jobs older than `job_retention` are deleted (cron, UTC).
    job_cleanup_schedule: String = "43 3 * * *".into(),
    /// How long done and cancelled jobs are kept (dead ones stay until handled).
    job_retention: Duration as "humantime_serde" = Duration::from_secs(7 * 24 * 3600),
    /// PostgreSQL databases holding orders and events, sharded by user through 1,024 virtual
    /// buckets; unset = the primary is the only shard. May hold passwords.
    database_shard_urls: Vec<SecretString> = Vec::new(),
    /// How often an instance re-reads the shard map (bucket moves take effect after this).
    shard_map_refresh: Duration as "humantime_serde" = Duration::from_secs(5),
    /// `Cache-Control: public, max-age` of public catalog responses.
    catalog_max_age: Duration as "humantime_serde" = Duration::from_secs(60),
    /// How long a product stays cached (every admin write and stock change invalidates it).
    cache_product_ttl: Duration as "humantime_serde" = Duration::from_secs(300),
    /// How long a catalog listing page stays cached; admin writes retire every page at once,
    /// stock shown in listings may lag orders by up to this long.
    cache_catalog_page_ttl: Duration as "humantime_serde" = Duration::from_secs(10),
    /// A stock reservation whose order was not confirmed is reconciled (confirmed or released)
    /// this long after it was made. Must exceed `request_timeout`.
    order_reconcile_after: Duration as "humantime_serde" = Duration::from_secs(120),
    /// How long an `Idempotency-Key` is remembered.
    idempotency_key_ttl: Duration as "humantime_serde" = Duration::from_secs(24 * 3600),
    /// Events waiting to be written, at most; beyond, `POST /events` answers 503.
    events_queue_capacity: usize = 100_000,
    /// Events written per batch (one multi-row insert), at most.
    events_batch_max: usize = 5_000,
    /// Events older than this (or more than an hour ahead) are refused with 400.
    events_max_age: Duration as "humantime_serde" = Duration::from_secs(7 * 24 * 3600),
    /// When the analytics roll-up recomputes recent hours (cron, UTC).
    analytics_rollup_schedule: String = "* * * * *".into(),
    /// How many recent hours each roll-up recomputes.
    analytics_rollup_hours: u32 = 3,
    /// When store maintenance runs: future event partitions, expired idempotency keys (cron,
    /// UTC).
    store_maintenance_schedule: String = "23 * * * *".into(),
}

impl Settings {
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
