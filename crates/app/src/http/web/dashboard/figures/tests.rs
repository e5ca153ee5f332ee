//! The figures' arithmetic against hand-computed answers.

use super::*;

const POOL: PrimaryPool = PrimaryPool {
    name: "primary",
    capacity: 20,
};

fn close(actual: Option<f64>, expected: f64) -> bool {
    actual.is_some_and(|actual| (actual - expected).abs() < 1e-9)
}

#[test]
fn the_quantile_is_interpolated_within_its_bucket_like_histogram_quantile() {
    // 100 observations: 50 up to 10 ms, 40 more up to 100 ms, 10 more up to 1 s.
    let buckets = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (f64::INFINITY, 100.0)];

    // Rank 95 is the 5th of 10 in (0.1, 1]: 0.1 + 0.9 × 5/10.
    assert!(close(quantile(0.95, &buckets), 0.55));
    // Rank 50 ends the first bucket, which starts at 0.
    assert!(close(quantile(0.5, &buckets), 0.01));
    assert!(close(quantile(0.25, &buckets), 0.005));
}

#[test]
fn a_quantile_beyond_the_last_finite_bucket_is_that_bucket_s_bound() {
    let buckets = [(0.1, 1.0), (1.0, 2.0), (f64::INFINITY, 10.0)];

    assert!(close(quantile(0.95, &buckets), 1.0));
}

#[test]
fn there_is_no_quantile_without_observations_or_without_the_infinite_bucket() {
    assert_eq!(quantile(0.95, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
    assert_eq!(quantile(0.95, &[(0.1, 3.0), (1.0, 5.0)]), None);
    assert_eq!(quantile(0.95, &[]), None);
}

#[test]
fn dipping_cumulative_counts_are_made_monotonic_first() {
    // The second bucket was read lower than the first: treated as equal to it.
    let buckets = [(0.1, 10.0), (1.0, 9.0), (f64::INFINITY, 10.0)];

    assert!(close(quantile(0.5, &buckets), 0.05));
}

#[test]
fn a_counter_that_went_down_was_reset_and_counts_from_zero() {
    assert_eq!(increase(10.0, 15.0), 5.0);
    assert_eq!(increase(10.0, 3.0), 3.0);
    assert_eq!(increase(0.0, 0.0), 0.0);
}

fn exposition(text: &str) -> Exposition {
    Exposition::parse(text)
}

const BEFORE: &str = r#"
http_request_duration_seconds_bucket{method="GET",route="/",status="200",le="0.01"} 10
http_request_duration_seconds_bucket{method="GET",route="/",status="200",le="0.1"} 10
http_request_duration_seconds_bucket{method="GET",route="/",status="200",le="+Inf"} 10
http_request_duration_seconds_count{method="GET",route="/",status="200"} 10
cache_requests_total{cache="products",result="hit"} 5
cache_requests_total{cache="products",result="miss"} 5
rate_limit_rejections_total{policy="auth"} 2
"#;

/// Two seconds later: 18 more requests to `/` (8 of them up to 10 ms, 10 up to 100 ms), a
/// first 503 and a first dashboard snapshot; 6 hits and 2 misses; 4 more refusals.
const AFTER: &str = r#"
http_request_duration_seconds_bucket{method="GET",route="/",status="200",le="0.01"} 18
http_request_duration_seconds_bucket{method="GET",route="/",status="200",le="0.1"} 28
http_request_duration_seconds_bucket{method="GET",route="/",status="200",le="+Inf"} 28
http_request_duration_seconds_count{method="GET",route="/",status="200"} 28
http_request_duration_seconds_bucket{method="POST",route="/api/v1/orders",status="503",le="0.01"} 0
http_request_duration_seconds_bucket{method="POST",route="/api/v1/orders",status="503",le="0.1"} 1
http_request_duration_seconds_bucket{method="POST",route="/api/v1/orders",status="503",le="+Inf"} 1
http_request_duration_seconds_count{method="POST",route="/api/v1/orders",status="503"} 1
http_request_duration_seconds_bucket{method="GET",route="/admin/dashboard/snapshot",status="200",le="0.01"} 1
http_request_duration_seconds_bucket{method="GET",route="/admin/dashboard/snapshot",status="200",le="0.1"} 1
http_request_duration_seconds_bucket{method="GET",route="/admin/dashboard/snapshot",status="200",le="+Inf"} 1
http_request_duration_seconds_count{method="GET",route="/admin/dashboard/snapshot",status="200"} 1
cache_requests_total{cache="products",result="hit"} 9
cache_requests_total{cache="products",result="miss"} 6
cache_requests_total{cache="users",result="hit"} 2
rate_limit_rejections_total{policy="auth"} 6
jobs_queue_depth{queue="default",state="ready"} 3
jobs_queue_depth{queue="default",state="running"} 1
jobs_queue_depth{queue="mail",state="ready"} 2
jobs_oldest_ready_seconds{queue="default"} 4.5
jobs_oldest_ready_seconds{queue="mail"} 12
db_pool_connections{pool="primary",state="in_use"} 5
db_pool_connections{pool="primary",state="idle"} 3
db_pool_connections{pool="replica-1",state="in_use"} 9
db_replica_lag_seconds{replica="replica-1"} 0.25
db_replica_lag_seconds{replica="replica-2"} 1.5
"#;

#[test]
fn rates_are_increases_over_the_window_and_ratios_are_over_the_window_too() {
    let figures = Figures::between(&exposition(BEFORE), &exposition(AFTER), 2.0, 7, POOL);

    assert_eq!(figures.at, 7);
    assert!(close(Some(figures.request_rate), 10.0), "{figures:?}");
    assert!(close(Some(figures.own_request_rate), 0.5), "{figures:?}");
    assert!(close(figures.error_rate, 5.0), "1 of 20: {figures:?}");
    // 4 + 2 hits of 4 + 2 hits and 1 miss in the window.
    assert!(close(figures.cache_hit_rate, 600.0 / 7.0), "{figures:?}");
    assert!(close(Some(figures.rate_limit_refusals), 2.0), "{figures:?}");
}

#[test]
fn the_p95_comes_from_the_bucket_increases_of_every_series() {
    // In the window: 9 up to 10 ms, 11 more up to 100 ms. Rank 19 of 20 is the 10th of 11 in
    // (10, 100] ms.
    let figures = Figures::between(&exposition(BEFORE), &exposition(AFTER), 2.0, 0, POOL);

    assert!(
        close(figures.p95_latency, 10.0 + 90.0 * 10.0 / 11.0),
        "{figures:?}"
    );
}

#[test]
fn gauges_are_read_as_they_are_now() {
    let figures = Figures::between(&exposition(BEFORE), &exposition(AFTER), 2.0, 0, POOL);

    assert_eq!(figures.queue_depth, 5.0, "ready jobs of every queue");
    assert_eq!(figures.oldest_job_age, 12.0, "the worst queue");
    assert_eq!(figures.replica_lag, Some(1.5), "the most lagging replica");
    assert!(close(figures.pool_usage, 25.0), "5 of the primary's 20");
}

#[test]
fn what_cannot_be_measured_is_none_rather_than_zero() {
    let empty = exposition("");

    let figures = Figures::between(&empty, &empty, 1.0, 0, POOL);

    assert_eq!(figures.request_rate, 0.0);
    assert!(figures.request_rate.is_sign_positive(), "never shown as -0.0");
    assert_eq!(figures.p95_latency, None, "no requests, no latency");
    assert_eq!(figures.error_rate, None);
    assert_eq!(figures.cache_hit_rate, None);
    assert_eq!(figures.replica_lag, None, "no replicas (SQLite)");
    assert_eq!(figures.pool_usage, None);
    assert_eq!(figures.queue_depth, 0.0);
}

#[test]
fn a_reset_histogram_counts_its_current_buckets_as_the_increase() {
    let before = exposition(
        r#"
h_bucket{le="1"} 100
h_bucket{le="+Inf"} 100
h_count 100
"#,
    );
    let after = exposition(
        r#"
h_bucket{le="1"} 3
h_bucket{le="+Inf"} 4
h_count 4
"#,
    );

    let buckets = histogram_increase(&before, &after, "h", |_| true);

    assert_eq!(buckets, vec![(1.0, 3.0), (f64::INFINITY, 4.0)]);
}

#[test]
fn series_first_seen_in_the_later_reading_grew_from_zero() {
    let before = exposition(r#"c_total{a="x"} 4"#);
    let after = exposition("c_total{a=\"x\"} 6\nc_total{a=\"y\"} 3\n");

    assert_eq!(counter_increase(&before, &after, "c_total", |_| true), 5.0);
}
