//! `outgrow serve`: bind, serve, and shut down without dropping a request.
//!
//! On SIGTERM or SIGINT: readiness turns 503 at once; after `shutdown_delay` (time for a load
//! balancer to notice) the listener closes and idle keep-alive connections are closed; in-flight
//! requests get `shutdown_timeout` to finish; then background tasks stop and the pools close.
//!
//! The accept loop is our own rather than `axum::serve` because that one sets no timer: it
//! would wait forever for a request head (slowloris) and keep idle connections without limit.
//! Here a connection must deliver each request head within `header_read_timeout` (counted from
//! when the server starts waiting, so silent and idle keep-alive connections close too), at
//! most `max_connections` are open (further ones wait in the listen backlog), and slow bodies
//! are bounded by `request_timeout` in the middleware stack (408). It speaks HTTP/1.1 only:
//! TLS and HTTP/2 end at the proxy in front, and protocol sniffing (hyper-util's `auto`) would
//! read a connection's first bytes with no timer at all.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use outgrow_platform::{
    config::Settings,
    shutdown::{Shutdown, ShutdownSignal, termination_requested},
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt;

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
    let limits = ConnectionLimits {
        header_read_timeout: state.settings.header_read_timeout,
        max_connections: state.settings.max_connections,
    };
    let server = tokio::spawn(accept_loop(listener, app, limits, shutdown.signal()));

    termination_requested().await;
    shutdown.start_draining();
    let settings = &state.settings;
    tracing::info!(delay = ?settings.shutdown_delay, "draining: readiness now reports 503");
    tokio::time::sleep(settings.shutdown_delay).await;
    shutdown.stop();
    tracing::info!(deadline = ?settings.shutdown_timeout, "listener closed; finishing in-flight requests");
    match tokio::time::timeout(settings.shutdown_timeout, server).await {
        Ok(Ok(())) => tracing::info!("all requests finished"),
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

/// What bounds the connections (the `header_read_timeout` and `max_connections` settings).
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    header_read_timeout: Duration,
    max_connections: usize,
}

/// Accepts connections until `stop`, serves each with HTTP/1.1 under the connection limits,
/// then waits for the open ones to finish their requests (idle ones close at once).
async fn accept_loop(listener: TcpListener, app: Router, limits: ConnectionLimits, stop: ShutdownSignal) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let stopped = stop.stopped();
    tokio::pin!(stopped);
    loop {
        let permit = tokio::select! {
            () = &mut stopped => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, remote) = tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: the condition is the machine's, not
                    // the client's, so wait a little rather than spin (as `axum::serve` does).
                    tracing::error!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        // No upgrades (WebSockets): nothing here uses them.
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that vanishes or sends garbage ends its own connection; nothing to report.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
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
