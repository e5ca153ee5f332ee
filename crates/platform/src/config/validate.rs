//! Validation: the cross-field checks serde cannot express, run once after loading.

use std::time::Duration;

use anyhow::bail;
use secrecy::ExposeSecret;

use super::{ENV_PREFIX, Settings};

impl Settings {
    /// Cross-field checks that serde cannot express.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let checks: [(&str, bool, &str); 10] = [
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
                "header_read_timeout",
                self.header_read_timeout < Duration::from_secs(1),
                "must be at least 1s",
            ),
            (
                "login_delay_max",
                self.login_delay_max < self.login_delay_base,
                "must be at least login_delay_base",
            ),
            (
                "login_attempts_forget_after",
                self.login_attempts_forget_after < self.login_delay_max,
                "must be at least login_delay_max",
            ),
            ("max_connections", self.max_connections == 0, "must be at least 1"),
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
