//! Operational endpoints: liveness, readiness and Prometheus metrics. Not rate limited:
//! probes and scrapers must always get through.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use super::{error::Problem, middleware::ClientAddress, responses::NotReady};
use crate::state::AppState;

/// The routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    feature_router![healthz; readyz; metrics]
}

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeResponse {
    /// `ok` or `ready`.
    pub status: &'static str,
    /// Optional backends and their state (`ok`, or `unreachable (falling back)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<&'static str>,
}

/// The liveness answer: `{"status":"ok"}` as a [`ProbeResponse`] serialises it.
pub const LIVENESS_BODY: &str = r#"{"status":"ok"}"#;

/// Liveness: the process is up and serving. Never checks dependencies (a database outage
/// must not make an orchestrator restart every instance). The middleware answers it before
/// anything else runs (`stack::liveness`); this handler documents it and serves it when the
/// route is mounted without that stack.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = ProbeResponse)))]
pub async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        LIVENESS_BODY,
    )
        .into_response()
}

/// How long readiness waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness: the database (the primary) answers and the instance is not shutting down; 503
/// otherwise, so a load balancer sends traffic elsewhere. Redis is reported but optional.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses((status = 200, body = ProbeResponse), NotReady)
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.shutdown.is_draining() {
        return unavailable("shutting down");
    }
    if let Err(error) = state.db.ready(READY_TIMEOUT).await {
        tracing::warn!(error = format!("{error:#}"), "not ready");
        return unavailable("the database is unreachable");
    }
    // Redis down is not "unready": every Redis use falls back (database, local limiter).
    let redis = match &state.redis {
        None => None,
        Some(redis) => Some(match redis.ping().await {
            Ok(()) => "ok",
            Err(_) => "unreachable (falling back)",
        }),
    };
    Json(ProbeResponse {
        status: "ready",
        redis,
    })
    .into_response()
}

fn unavailable(detail: &str) -> Response {
    let mut response = Problem::new(StatusCode::SERVICE_UNAVAILABLE, Some(detail.to_owned()))
        .into_response_with(StatusCode::SERVICE_UNAVAILABLE);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn export_queue_gauges(state: &AppState) {
    let stats = match state.db.jobs().stats(chrono::Utc::now()).await {
        Ok(stats) => stats,
        Err(error) => {
            tracing::warn!(%error, "reading queue statistics failed");
            return;
        }
    };
    // Queues with nothing pending return no row: report them as empty, not stale.
    for queue in &state.settings.worker_queues {
        if !stats.iter().any(|stat| &stat.queue == queue) {
            for job_state in ["ready", "running", "dead"] {
                metrics::gauge!("jobs_queue_depth", "queue" => queue.clone(), "state" => job_state).set(0.0);
            }
            metrics::gauge!("jobs_oldest_ready_seconds", "queue" => queue.clone()).set(0.0);
        }
    }
    for stat in stats {
        for (job_state, count) in [
            ("ready", stat.ready),
            ("running", stat.running),
            ("dead", stat.dead),
        ] {
            metrics::gauge!("jobs_queue_depth", "queue" => stat.queue.clone(), "state" => job_state)
                .set(count as f64);
        }
        metrics::gauge!("jobs_oldest_ready_seconds", "queue" => stat.queue).set(stat.oldest_ready_seconds);
    }
}

/// Sets the series read at scrape time rather than on every event: pool occupancy, queue
/// depth and age, the process's own figures. Pool occupancy and queue depth are read now, so
/// they are current whatever else runs (a worker may live in another process). Called by
/// `/metrics` and by the operations dashboard, which read the same rendering.
pub async fn refresh_scrape_time_metrics(state: &AppState) {
    state.db.export_pool_gauges();
    export_queue_gauges(state).await;
    outgrow_platform::telemetry::record_scrape_time_metrics();
}

/// Prometheus metrics in the text exposition format, for clients in `metrics_allowed_networks`
/// only (others get the same 404 as when metrics are off: the endpoint's existence is not
/// advertised to the public).
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"), (status = 404, description = "Metrics are disabled, or the client is outside `metrics_allowed_networks`"))
)]
pub async fn metrics(State(state): State<AppState>, ClientAddress(client): ClientAddress) -> Response {
    let allowed = client.is_some_and(|ip| {
        state
            .settings
            .metrics_allowed_networks
            .iter()
            .any(|net| net.contains(&ip))
    });
    if !allowed {
        return StatusCode::NOT_FOUND.into_response();
    }
    refresh_scrape_time_metrics(&state).await;
    match &state.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            handle.render(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_liveness_body_is_the_documented_probe_response() {
        let documented = serde_json::to_string(&ProbeResponse {
            status: "ok",
            redis: None,
        })
        .expect("json");
        assert_eq!(LIVENESS_BODY, documented);
    }
}
