//! Logs (tracing) and metrics (Prometheus).
//!
//! Logs carry the fields of every enclosing span, so the request id set by the HTTP layer is
//! on each line a request causes. Metrics use the `metrics` facade with the Prometheus
//! exporter; histograms are given explicit buckets so they render as real Prometheus
//! histograms (quantiles computed server-side), not summaries.

use std::{sync::OnceLock, time::Duration};

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

pub mod error_tracking;
mod format;
mod writer;

pub use format::{REQUEST, RequestContext};
pub use writer::BatchedWriter;

/// Buckets of batch sizes (rows).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
];

/// Latency buckets in seconds, from a cached read (~1 ms) to a request at its timeout.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Keeps the log writer's thread alive; dropping it (at the end of `main`) writes what is
/// still buffered.
#[must_use = "logs written after the guard is dropped are lost"]
pub struct LogGuard {
    writer: Option<BatchedWriter>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGuard").finish_non_exhaustive()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            writer.stop();
        }
    }
}

/// Installs the global log subscriber. Safe to call more than once (later calls do nothing).
/// Lines go through a [`BatchedWriter`].
pub fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<LogGuard> {
    let filter = EnvFilter::try_new(filter)
        .with_context(|| format!("invalid log_level (OUTGROW_LOG_LEVEL) {filter:?}"))?;
    let writer = match format {
        LogFormat::Pretty => BatchedWriter::start(Box::new(std::io::stderr())),
        LogFormat::Json => BatchedWriter::start(Box::new(std::io::stdout())),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .event_format(format::Pretty)
                    // Colours for people at a terminal; escape codes in a log file are noise.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(writer.clone()),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .fmt_fields(fmt::format::JsonFields::new())
                    .event_format(format::Json)
                    .with_writer(writer.clone()),
            )
            .try_init(),
    };
    if result.is_err() {
        // Already initialised (a second server in one test process): keep the first.
        writer.stop();
        return Ok(LogGuard { writer: None });
    }
    let _ = DROPPED_LINES.set(writer.clone());
    Ok(LogGuard { writer: Some(writer) })
}

/// The log writer in use, for `log_lines_dropped_total`.
static DROPPED_LINES: OnceLock<BatchedWriter> = OnceLock::new();

thread_local! {
    /// This thread's handles on counters named and labelled by static strings, by the
    /// strings' addresses. Finding a series in the registry builds and hashes its key and
    /// takes a read lock; on the hottest paths (every cache read, every Redis call) a handle
    /// found here is one small map lookup.
    static COUNTERS: std::cell::RefCell<std::collections::HashMap<[usize; 5], metrics::Counter>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    /// The same for histograms ([`observe`]).
    static HISTOGRAMS: std::cell::RefCell<std::collections::HashMap<[usize; 5], metrics::Histogram>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The registry key of a series named and labelled by static strings: their addresses.
fn static_key(name: &'static str, labels: &[(&'static str, &'static str)]) -> [usize; 5] {
    let address = |text: &'static str| text.as_ptr() as usize;
    let mut key = [address(name), 0, 0, 0, 0];
    for (index, (label, value)) in labels.iter().take(2).enumerate() {
        key[1 + 2 * index] = address(label);
        key[2 + 2 * index] = address(value);
    }
    key
}

fn static_labels(labels: &[(&'static str, &'static str)]) -> Vec<metrics::Label> {
    labels
        .iter()
        .take(2)
        .map(|(label, value)| metrics::Label::from_static_parts(label, value))
        .collect()
}

/// Records `seconds` in the histogram `name{label=value,…}` (at most two labels, all
/// `'static`), through this thread's handle on it: cheap enough for every cache read.
pub fn observe(name: &'static str, labels: &[(&'static str, &'static str)], seconds: f64) {
    HISTOGRAMS.with_borrow_mut(|histograms| {
        histograms
            .entry(static_key(name, labels))
            .or_insert_with(|| metrics::histogram!(name, static_labels(labels)))
            .record(seconds);
    });
}

/// Adds `by` to the counter `name{label=value,…}` (at most two labels, all `'static`), through
/// this thread's handle on it.
pub fn count(name: &'static str, labels: &[(&'static str, &'static str)], by: u64) {
    COUNTERS.with_borrow_mut(|counters| {
        counters
            .entry(static_key(name, labels))
            .or_insert_with(|| metrics::counter!(name, static_labels(labels)))
            .increment(by);
    });
}

static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

/// Updates the series read at scrape time rather than on every event: the process's CPU,
/// memory, file descriptors and threads (`process_*`), and `log_lines_dropped_total`. Called
/// when `/metrics` is rendered.
pub fn record_scrape_time_metrics() {
    if let Some(writer) = DROPPED_LINES.get() {
        metrics::counter!("log_lines_dropped_total").absolute(writer.dropped_lines());
    }
    PROCESS
        .get_or_init(|| {
            let collector = metrics_process::Collector::default();
            collector.describe();
            collector
        })
        .collect();
}

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = METRICS.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .context("configuring histogram buckets")?
        .set_buckets_for_metric(Matcher::Full("events_batch_rows".into()), BATCH_BUCKETS)
        .context("configuring histogram buckets")?
        .set_buckets_for_metric(Matcher::Full("jobs_outcome_batch_size".into()), BATCH_BUCKETS)
        .context("configuring histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe_metrics();
    Ok(METRICS.get_or_init(|| handle).clone())
}

/// Keeps histograms bounded in memory: the exporter expects `run_upkeep` periodically when it
/// is not serving HTTP itself.
pub async fn run_metrics_upkeep(handle: PrometheusHandle, stop: crate::shutdown::ShutdownSignal) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let stopped = stop.stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = &mut stopped => return,
        }
    }
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from request received to response headers sent, by method, matched route and status."
    );
    describe_gauge!("http_requests_in_flight", "Requests being handled right now.");
    describe_counter!(
        "log_lines_dropped_total",
        "Log lines dropped because the log buffer was full (the log output is blocked)."
    );
    describe_gauge!(
        "events_queue_capacity",
        "Events that may wait to be written (events_queue_capacity)."
    );
    describe_gauge!(
        "events_queued",
        "Events waiting to be written or being written now."
    );
    describe_counter!("events_stored_total", "Events committed, by shard.");
    describe_counter!(
        "events_rejected_total",
        "Events refused: queue_full (answered 503) or write_failed, by reason."
    );
    describe_histogram!(
        "events_batch_seconds",
        Unit::Seconds,
        "Time to write one group-committed batch of events, by shard."
    );
    describe_histogram!(
        "events_batch_rows",
        Unit::Count,
        "Events per group-committed batch, by shard."
    );
    describe_counter!(
        "orders_placed_total",
        "Orders placed (answered 201, replays excluded)."
    );
    describe_counter!(
        "orders_refused_total",
        "Order requests that failed after validation: stock, unknown products, backends."
    );
    describe_counter!("orders_cancelled_total", "Orders cancelled.");
    describe_counter!(
        "orders_reconciled_total",
        "Stock reservations settled by the reconciler, by outcome (settled, confirmed, released)."
    );
    describe_counter!(
        "http_slow_requests_total",
        "Requests slower than slow_request_threshold, by method and matched route."
    );
    describe_counter!(
        "rate_limit_rejections_total",
        "Requests answered 429 by the rate limiter, by policy."
    );
    describe_counter!(
        "cache_requests_total",
        "Cache reads by cache name and result (hit or miss)."
    );
    describe_histogram!(
        "cache_read_duration_seconds",
        Unit::Seconds,
        "Time to read one cache tier (hit or miss; the loader excluded), by cache and tier (local: this instance's memory, shared: Redis)."
    );
    describe_histogram!(
        "rate_limit_check_duration_seconds",
        Unit::Seconds,
        "Time to decide one rate-limit check, by backend (local, or redis with its fallback included)."
    );
    describe_histogram!(
        "db_read_duration_seconds",
        Unit::Seconds,
        "Time of one routed PostgreSQL read, connection acquire included, by the pool that served it (primary, replica-N)."
    );
    describe_counter!(
        "cache_writes_total",
        "Fresh values written through to the cache after a write, by cache name."
    );
    describe_counter!(
        "cache_invalidations_total",
        "Cache entries invalidated by writes, by cache name."
    );
    describe_histogram!(
        "password_hash_duration_seconds",
        Unit::Seconds,
        "Time to hash or verify one password with Argon2id, queueing included, by operation."
    );
    describe_counter!(
        "auth_logins_total",
        "Login attempts by result (success or failure)."
    );
    describe_counter!(
        "auth_refresh_reuse_total",
        "Rotated refresh tokens presented again; each revokes its whole session."
    );
    describe_counter!(
        "auth_session_check_fallback_total",
        "Bearer tokens accepted on their signature alone because the session store was unreachable."
    );
    describe_counter!(
        "db_queries_total",
        "Queries and transactions by the pool that served them."
    );
    describe_gauge!(
        "jobs_queue_depth",
        "Jobs per queue and state (ready, running, dead)."
    );
    describe_gauge!(
        "jobs_oldest_ready_seconds",
        "How long the oldest due job of each queue has waited."
    );
    describe_histogram!(
        "jobs_run_duration_seconds",
        Unit::Seconds,
        "Time to run one job, by kind and outcome (success, failure)."
    );
    describe_counter!("jobs_failures_total", "Failed job runs, by kind.");
    describe_histogram!(
        "jobs_outcome_batch_size",
        Unit::Count,
        "Run outcomes written by one statement (group commit of a worker's finished runs)."
    );
    describe_counter!(
        "product_views_flushed_total",
        "Product views written behind to the database by this instance."
    );
    describe_counter!(
        "product_views_flush_failures_total",
        "Write-behind flushes of product views that failed (their counts are kept for the next)."
    );
    describe_histogram!(
        "product_views_flush_seconds",
        Unit::Seconds,
        "Time to write one write-behind batch of product views."
    );
    describe_counter!(
        "jobs_dead_total",
        "Jobs that failed their last allowed run, by kind."
    );
    describe_counter!(
        "jobs_interrupted_total",
        "Runs whose worker vanished (lease expired); the job was returned to the queue."
    );
    describe_gauge!(
        "db_pool_connections",
        "Pooled connections by pool and state (idle, in_use)."
    );
    describe_gauge!(
        "db_pool_waiting",
        "Requests waiting for a pooled connection, by pool."
    );
    describe_histogram!(
        "db_pool_acquire_seconds",
        Unit::Seconds,
        "Time to get a pooled connection, by pool."
    );
    describe_gauge!(
        "db_replica_lag_seconds",
        "Replay lag of each replica, as last probed."
    );
    describe_gauge!(
        "db_replica_healthy",
        "1 when a replica is in the read rotation, 0 when skipped."
    );
    describe_counter!(
        "db_replica_failovers_total",
        "Reads retried on the primary after failing on a replica."
    );
    describe_counter!(
        "db_read_your_writes_total",
        "Reads sent to the primary because the data was written within the read-your-writes window."
    );
    describe_counter!("redis_errors_total", "Failed Redis calls by operation and kind.");
    describe_counter!(
        "redis_commands_total",
        "Redis round trips (a command, pipeline or script each) by operation."
    );
    describe_counter!(
        "rate_limit_fallback_total",
        "Rate-limit checks decided without Redis, by fallback mode."
    );
    describe_counter!(
        "cache_shared_hits_total",
        "Cache reads served by the shared (Redis) tier."
    );
    describe_counter!(
        "cache_bus_connects_total",
        "(Re)connections of the cache invalidation listener; each clears the local tier."
    );
    describe_counter!(
        "cache_invalidations_dropped_total",
        "Invalidations that could not be queued while Redis was down (queue full)."
    );
}
