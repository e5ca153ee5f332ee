//! The dashboard's figures, computed from two readings of this instance's metrics (see
//! [`super::exposition`]) the way Prometheus would compute them from two scrapes: counters
//! become rates over the time between the readings (a counter that went down was reset, and
//! its new value is the increase, as `rate()` assumes), the latency histogram's bucket
//! increases give the 95th percentile (interpolated linearly within its bucket, as
//! `histogram_quantile()` does), gauges are read as they are now.
//!
//! Everything here is a pure function of its inputs, so it is tested without a server.

use std::collections::BTreeMap;

use serde::Serialize;

use super::exposition::{Exposition, Labels};

/// The request latency histogram (`http::middleware::record_request`).
const REQUEST_DURATION: &str = "http_request_duration_seconds";
/// Routes of the dashboard itself: counted like any request, and also shown apart.
pub const OWN_ROUTES: &str = "/admin/dashboard";

/// The pool whose occupancy the dashboard shows: the primary's (writes and most reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryPool {
    /// Its `pool` label in `db_pool_connections` (`primary`, `sqlite-writer`).
    pub name: &'static str,
    /// Its most connections.
    pub capacity: u32,
}

/// What the dashboard shows at one moment. Field names are the `data-metric` ids of the page.
/// `None` (JSON `null`) means "not applicable" or "nothing to measure in this window": no
/// replicas, no requests (no latency), no cache reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// When the later reading was taken, in milliseconds since the Unix epoch (the charts' x).
    pub at: i64,
    /// Seconds between the two readings: what the rates are averaged over.
    pub window: f64,
    /// Requests answered per second (the dashboard's own included).
    pub request_rate: f64,
    /// The part of `request_rate` that is the dashboard's own page, stream and snapshots.
    pub own_request_rate: f64,
    /// 95th percentile of the time to response headers, in milliseconds.
    pub p95_latency: Option<f64>,
    /// Percentage of requests answered 5xx.
    pub error_rate: Option<f64>,
    /// Percentage of cache reads that were hits, over every cache.
    pub cache_hit_rate: Option<f64>,
    /// Jobs due or waiting, over every queue.
    pub queue_depth: f64,
    /// Seconds the oldest due job has waited (the worst queue).
    pub oldest_job_age: f64,
    /// The most lagging replica's replay lag, in seconds (`None`: no replicas).
    pub replica_lag: Option<f64>,
    /// Percentage of the primary pool's connections in use.
    pub pool_usage: Option<f64>,
    /// Requests refused by the rate limiter, per second.
    pub rate_limit_refusals: f64,
}

impl Figures {
    /// The figures between `previous` and `current`, taken `window` seconds apart (the later
    /// one at `at`, Unix milliseconds).
    pub fn between(
        previous: &Exposition,
        current: &Exposition,
        window: f64,
        at: i64,
        pool: PrimaryPool,
    ) -> Self {
        let per_second = |count: f64| if window > 0.0 { count / window } else { 0.0 };
        let count_series = format!("{REQUEST_DURATION}_count");
        let requests = counter_increase(previous, current, &count_series, |_| true);
        let own = counter_increase(previous, current, &count_series, |labels| {
            label(labels, "route").starts_with(OWN_ROUTES)
        });
        let errors = counter_increase(previous, current, &count_series, |labels| {
            label(labels, "status").starts_with('5')
        });
        let hits = counter_increase(previous, current, "cache_requests_total", |labels| {
            label(labels, "result") == "hit"
        });
        let misses = counter_increase(previous, current, "cache_requests_total", |labels| {
            label(labels, "result") == "miss"
        });
        let refusals = counter_increase(previous, current, "rate_limit_rejections_total", |_| true);
        let latency = histogram_increase(previous, current, REQUEST_DURATION, |_| true);
        let in_use = current
            .named("db_pool_connections")
            .find(|(labels, _)| label(labels, "pool") == pool.name && label(labels, "state") == "in_use")
            .map(|(_, value)| value);
        Self {
            at,
            window,
            request_rate: per_second(requests),
            own_request_rate: per_second(own),
            p95_latency: quantile(0.95, &latency).map(|seconds| seconds * 1000.0),
            error_rate: percentage(errors, requests),
            cache_hit_rate: percentage(hits, hits + misses),
            queue_depth: gauge_sum(current, "jobs_queue_depth", |labels| {
                label(labels, "state") == "ready"
            }),
            oldest_job_age: gauge_max(current, "jobs_oldest_ready_seconds").unwrap_or(0.0),
            replica_lag: gauge_max(current, "db_replica_lag_seconds"),
            pool_usage: in_use.and_then(|in_use| percentage(in_use, f64::from(pool.capacity))),
            rate_limit_refusals: per_second(refusals),
        }
    }
}

/// A label's value, empty when the series lacks it.
fn label<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

/// `part` of `whole` in percent; `None` when there is no whole.
fn percentage(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| 100.0 * part / whole)
}

/// How much a counter grew from `previous` to `current`: a counter never goes down unless its
/// process restarted (or the series was dropped and recreated), and then everything it
/// counted since is the increase.
pub fn increase(previous: f64, current: f64) -> f64 {
    if current < previous {
        current
    } else {
        current - previous
    }
}

/// The summed increase of the counters `name` whose labels pass `keep`. A series absent
/// before (its first event came in between) grew from zero. (Folded from `0.0`: a float
/// `sum()` of nothing is `-0.0`, which would show as "-0.0".)
pub fn counter_increase(
    previous: &Exposition,
    current: &Exposition,
    name: &str,
    keep: impl Fn(&Labels) -> bool,
) -> f64 {
    current
        .named(name)
        .filter(|(labels, _)| keep(labels))
        .map(|(labels, now)| increase(previous.value(name, labels).unwrap_or(0.0), now))
        .fold(0.0, |total, value| total + value)
}

/// The increase of the histogram `name` between two readings, summed over its series whose
/// labels (without `le`) pass `keep`: `(upper bound, cumulative count)` pairs sorted by bound,
/// as `sum by (le) (increase(name_bucket[…]))` gives them. A series whose `_count` went down
/// was reset, and all its current counts are the increase.
pub fn histogram_increase(
    previous: &Exposition,
    current: &Exposition,
    name: &str,
    keep: impl Fn(&Labels) -> bool,
) -> Vec<(f64, f64)> {
    let buckets = format!("{name}_bucket");
    let count = format!("{name}_count");
    let mut by_bound: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for (labels, now) in current.named(&buckets) {
        let Some(bound) = labels.get("le").and_then(|le| super::exposition::parse_value(le)) else {
            continue;
        };
        let mut series = labels.clone();
        series.remove("le");
        if !keep(&series) {
            continue;
        }
        let reset = match (previous.value(&count, &series), current.value(&count, &series)) {
            (Some(before), Some(after)) => after < before,
            _ => false,
        };
        let before = if reset {
            0.0
        } else {
            previous.value(&buckets, labels).unwrap_or(0.0)
        };
        // Positive floats sort like their bit patterns: the bound's bits order the map.
        let entry = by_bound.entry(bound.to_bits()).or_insert((bound, 0.0));
        entry.1 += increase(before, now);
    }
    by_bound.into_values().collect()
}

/// The `q` quantile (0..=1) of a histogram given as cumulative `(upper bound, count)` buckets
/// sorted by bound, the last `+Inf`: what Prometheus' `histogram_quantile` answers. The rank
/// is found in its bucket and interpolated linearly between the bucket's bounds (the first
/// bucket starts at 0); a rank in the `+Inf` bucket answers the highest finite bound. `None`
/// without observations or without the `+Inf` bucket.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let &(last_bound, _) = buckets.last()?;
    if last_bound != f64::INFINITY || !(0.0..=1.0).contains(&q) {
        return None;
    }
    // Counts read at slightly different moments may dip; cumulative counts never do.
    let mut monotonic = Vec::with_capacity(buckets.len());
    let mut highest: f64 = 0.0;
    for &(bound, count) in buckets {
        highest = highest.max(count);
        monotonic.push((bound, highest));
    }
    let total = highest;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let index = monotonic.iter().position(|&(_, count)| count >= rank)?;
    let (upper, count) = monotonic[index];
    if upper == f64::INFINITY {
        return Some(if index == 0 { 0.0 } else { monotonic[index - 1].0 });
    }
    let (lower, below) = if index == 0 {
        (0.0_f64.min(upper), 0.0)
    } else {
        monotonic[index - 1]
    };
    let in_bucket = count - below;
    if in_bucket <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / in_bucket)
}

/// The sum of the gauges `name` whose labels pass `keep` (0 when there are none).
fn gauge_sum(current: &Exposition, name: &str, keep: impl Fn(&Labels) -> bool) -> f64 {
    current
        .named(name)
        .filter(|(labels, _)| keep(labels))
        .map(|(_, value)| value)
        .fold(0.0, |total, value| total + value)
}

/// The largest of the gauges `name`, `None` when there are none.
fn gauge_max(current: &Exposition, name: &str) -> Option<f64> {
    current.named(name).map(|(_, value)| value).reduce(f64::max)
}

#[cfg(test)]
mod tests;
