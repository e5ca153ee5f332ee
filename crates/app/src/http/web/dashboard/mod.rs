//! The live operations dashboard (`/admin/dashboard`), for administrators: request rate, p95
//! latency, error rate, cache hit rate, queue depth, oldest job age, replica lag, pool usage
//! and rate-limit refusals, from Outgrow's own metrics — the numbers `/metrics` exposes, read
//! back from the same rendering ([`exposition`]) and turned into figures as Prometheus would
//! ([`figures`]).
//!
//! The page is rendered with the current figures (the view without JavaScript); its module,
//! `js/dashboard.js`, then follows the stream (`/admin/dashboard/stream`, Server-Sent Events,
//! [`stream`]) or polls the snapshot (`/admin/dashboard/snapshot`, the same JSON once) and
//! charts the last five minutes. Request, latency, error, cache, pool and rate-limit figures
//! are this instance's (each instance has its own metrics); queue and replica figures are read
//! from the shared database, so every instance shows the same.

pub mod exposition;
pub mod figures;
pub mod sampling;
pub mod stream;

use askama::Template;
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::{IntoResponse, Response, sse::KeepAlive, sse::Sse},
};

use self::figures::Figures;
use super::{
    csrf,
    error::PageError,
    page::{Audience, Layout, render},
    visitor::{Admin, Visitor},
};
use crate::state::AppState;

/// One chart of the page.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    /// The `data-metric` id and the JSON field.
    pub id: &'static str,
    /// The chart's heading.
    pub heading: &'static str,
    /// The unit after the number.
    pub unit: &'static str,
    /// Whether it is the shared database's figure (the same on every instance).
    pub shared: bool,
}

/// The charts, in page order.
pub const SERIES: [Series; 9] = [
    series("request_rate", "Request rate", "req/s", false),
    series("p95_latency", "p95 latency", "ms", false),
    series("error_rate", "Error rate", "%", false),
    series("cache_hit_rate", "Cache hit rate", "%", false),
    series("queue_depth", "Queue depth", "jobs", true),
    series("oldest_job_age", "Oldest job age", "s", true),
    series("replica_lag", "Replica lag", "s", true),
    series("pool_usage", "Pool usage", "%", false),
    series("rate_limit_refusals", "Rate-limit refusals", "/s", false),
];

const fn series(id: &'static str, heading: &'static str, unit: &'static str, shared: bool) -> Series {
    Series {
        id,
        heading,
        unit,
        shared,
    }
}

/// The value of the series `id` in `figures`.
pub fn value_of(figures: &Figures, id: &str) -> Option<f64> {
    match id {
        "request_rate" => Some(figures.request_rate),
        "p95_latency" => figures.p95_latency,
        "error_rate" => figures.error_rate,
        "cache_hit_rate" => figures.cache_hit_rate,
        "queue_depth" => Some(figures.queue_depth),
        "oldest_job_age" => Some(figures.oldest_job_age),
        "replica_lag" => figures.replica_lag,
        "pool_usage" => figures.pool_usage,
        "rate_limit_refusals" => Some(figures.rate_limit_refusals),
        _ => None,
    }
}

/// A figure for people, as `js/dashboard.js` writes it too: `12.3 req/s`, `4 jobs`, `n/a`.
pub fn format_value(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "n/a".to_owned(),
        Some(value) if unit == "jobs" => format!("{value:.0} {unit}"),
        Some(value) => format!("{value:.1} {unit}"),
    }
}

/// The JSON of the snapshot and of each stream event: the figures, and which instance the
/// per-instance ones are (after a reconnection, the stream may come from another instance).
#[derive(Debug, serde::Serialize)]
pub struct Snapshot<'a> {
    /// [`describe_instance`].
    pub instance: &'a str,
    /// The figures, as top-level fields.
    #[serde(flatten)]
    pub figures: &'a Figures,
}

/// A chart as the page shows it.
struct ChartView {
    series: Series,
    /// The latest value with its unit.
    value: String,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    charts: Vec<ChartView>,
    /// Which instance the per-instance figures are.
    instance: String,
    /// Seconds the rates are averaged over, for people.
    window: String,
    /// The dashboard's own requests per second, for people.
    own_rate: String,
}

/// This instance as people find it: its host name, process id and listen address.
pub fn describe_instance(state: &AppState) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "an unnamed host".to_owned());
    // Port 0 means "any": the bound address is then in the public URL the server derived.
    let listen = if state.settings.listen.port() == 0 {
        state.settings.public_base_url()
    } else {
        state.settings.listen.to_string()
    };
    format!("{host}, process {}, listening on {listen}", std::process::id())
}

/// The figures now, for a single answer; 404 when metrics are disabled.
async fn current_figures(state: &AppState) -> Result<Figures, PageError> {
    let reading = sampling::read(state).await.ok_or(PageError::NotFound(
        "Metrics are disabled on this instance (metrics_enabled).",
    ))?;
    Ok(sampling::figures_now(state, reading))
}

/// `GET /admin/dashboard`: the figures now, one chart per series.
pub async fn show_dashboard(
    Admin(principal): Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let figures = current_figures(&state).await?;
    let charts = SERIES
        .iter()
        .map(|series| ChartView {
            series: *series,
            value: format_value(value_of(&figures, series.id), series.unit),
        })
        .collect();
    let page = DashboardPage {
        layout: Layout {
            csrf: csrf::token(&state, principal.session_id.as_bytes()),
            visitor: Visitor::SignedIn(principal),
            notice: None,
            styles: &["css/vendor/uplot.css"],
            ..Layout::public("Operations", "dashboard")
        },
        charts,
        instance: describe_instance(&state),
        window: format!("{:.1}", figures.window),
        own_rate: format_value(Some(figures.own_request_rate), "req/s"),
    };
    render(&page, Audience::Private, &headers)
}

/// `GET /admin/dashboard/snapshot`: the figures now, as JSON (for clients that poll).
pub async fn show_snapshot(Admin(_): Admin, State(state): State<AppState>) -> Result<Response, PageError> {
    let figures = current_figures(&state).await?;
    let instance = describe_instance(&state);
    let mut response = Json(Snapshot {
        instance: &instance,
        figures: &figures,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /admin/dashboard/stream`: the figures every second, as Server-Sent Events, until the
/// instance drains.
pub async fn stream_dashboard(Admin(_): Admin, State(state): State<AppState>) -> Result<Response, PageError> {
    if state.metrics.is_none() {
        return Err(PageError::NotFound(
            "Metrics are disabled on this instance (metrics_enabled).",
        ));
    }
    let sse = Sse::new(stream::snapshots(state.clone(), describe_instance(&state)))
        .keep_alive(KeepAlive::new().interval(stream::KEEP_ALIVE));
    let mut response = sse.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // nginx buffers proxied responses by default, which would hold events back for seconds.
    headers.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_shown_with_their_unit_and_missing_ones_as_not_applicable() {
        assert_eq!(format_value(Some(12.345), "req/s"), "12.3 req/s");
        assert_eq!(format_value(Some(4.0), "jobs"), "4 jobs");
        assert_eq!(format_value(Some(0.0), "%"), "0.0 %");
        assert_eq!(format_value(None, "s"), "n/a");
    }

    #[test]
    fn every_series_reads_its_own_field_of_the_json() {
        let figures = Figures::between(
            &exposition::Exposition::default(),
            &exposition::Exposition::default(),
            1.0,
            0,
            figures::PrimaryPool {
                name: "primary",
                capacity: 1,
            },
        );
        let json = serde_json::to_value(&figures).expect("json");
        for series in SERIES {
            assert!(json.get(series.id).is_some(), "{} is in the JSON", series.id);
            assert_eq!(
                json[series.id].as_f64(),
                value_of(&figures, series.id),
                "{}",
                series.id
            );
        }
    }
}
