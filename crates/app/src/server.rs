//! `outgrow serve`: bind, serve, and shut down without dropping a request.
//!
//! On SIGTERM or SIGINT: readiness turns 503 at once; after `shutdown_delay` (time for a load
//! balancer to notice) the listener closes and idle keep-alive connections are closed; in-flight
//! requests get `shutdown_timeout` to finish; then background tasks stop and the pools close.

use std::net::SocketAddr;

use anyhow::Context;
use outgrow_platform::{
    config::Settings,
    shutdown::{Shutdown, termination_requested},
};

use crate::{http, state::App};

/// Runs the HTTP server (and, with `workers`, the job workers) until a termination signal has
/// been handled.
pub async fn serve(mut settings: Settings, workers: bool, demo: bool) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {} (listen / OUTGROW_LISTEN)", settings.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    // Links in e-mails need the real port when the configured one was 0.
    if settings.public_url.is_none() {
        settings.public_url = Some(format!("http://{address}"));
    }
    let state = App::build(settings, shutdown.clone()).await?;
    if demo {
        announce_demo(crate::demo::ensure(&state).await?);
    }
    let worker = workers.then(|| tokio::spawn(crate::jobs::run_workers(state.clone(), shutdown.signal())));
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
    if let Some(worker) = worker {
        // The worker drains within the same deadline (it releases what it cannot finish).
        let _ = worker.await;
    }
    state.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `outgrow worker`: job workers only, until a termination signal.
pub async fn work(settings: Settings) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    let state = App::build(settings, shutdown.clone()).await?;
    tracing::info!(backends = state.describe_backends(), "Outgrow worker running");
    let worker = tokio::spawn(crate::jobs::run_workers(state.clone(), shutdown.signal()));
    termination_requested().await;
    shutdown.stop();
    let _ = worker.await;
    state.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Says what `--demo` did, on standard output: the generated password is shown this once.
fn announce_demo(report: Option<crate::demo::DemoReport>) {
    match report {
        None => println!("--demo: the catalog has products already; nothing added"),
        Some(report) => {
            println!(
                "--demo: added {} products with photographs (their WebP variants are being made)",
                report.products
            );
            if let Some(password) = report.admin_password {
                println!(
                    "--demo: administrator {} with password {password} (shown once; change it)",
                    crate::demo::ADMIN_EMAIL
                );
            }
        }
    }
}
