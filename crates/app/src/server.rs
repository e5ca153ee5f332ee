//! `outgrow serve`: bind, serve, and shut down without dropping a request.
//!
//! On SIGTERM or SIGINT: readiness turns 503 at once; after `shutdown_delay` (time for a load
//! balancer to notice) the listener closes and idle keep-alive connections are closed; in-flight
//! requests get `shutdown_timeout` to finish; then background tasks stop and the pools close.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use chrono::Utc;
use outgrow_platform::{
    config::Settings,
    shutdown::{Shutdown, termination_requested},
};

use crate::{http, state::App};

/// How often expired sessions are deleted.
const SESSION_CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs the HTTP server until a termination signal has been handled.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {} (listen / OUTGROW_LISTEN)", settings.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let state = App::build(settings, shutdown.clone()).await?;
    spawn_session_cleanup(&state, &shutdown);
    tracing::info!(
        address = %address,
        url = format!("http://{address}"),
        backends = state.describe_backends(),
        "Outgrow listening"
    );

    let app = http::router(state.clone());
    let stop = shutdown.signal();
    let server = tokio::spawn(
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stop.stopped())
            .into_future(),
    );

    termination_requested().await;
    shutdown.start_draining();
    let settings = &state.settings;
    tracing::info!(delay = ?settings.shutdown_delay, "draining: readiness now reports 503");
    tokio::time::sleep(settings.shutdown_delay).await;
    shutdown.stop();
    tracing::info!(deadline = ?settings.shutdown_timeout, "listener closed; finishing in-flight requests");
    match tokio::time::timeout(settings.shutdown_timeout, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("all requests finished"),
        Ok(Ok(Err(error))) => tracing::error!(%error, "the server failed while draining"),
        Ok(Err(error)) => tracing::error!(%error, "the server task failed"),
        Err(_) => tracing::warn!("shutdown_timeout reached; abandoning the requests still running"),
    }
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn spawn_session_cleanup(state: &crate::state::AppState, shutdown: &Shutdown) {
    let sessions = state.sessions.clone();
    let stop = shutdown.signal();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SESSION_CLEANUP_INTERVAL);
        let stopped = stop.stopped();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = tick.tick() => match sessions.delete_expired(Utc::now()).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "deleted expired sessions"),
                    Err(error) => tracing::warn!(%error, "deleting expired sessions failed"),
                },
                _ = &mut stopped => return,
            }
        }
    });
}
