//! The `outgrow` binary: parse the command line, load configuration, run the subcommand.

use std::process::ExitCode;

use clap::Parser;
use outgrow::cli::Cli;
use outgrow_platform::{config::Settings, telemetry};

/// mimalloc instead of glibc's allocator: fewer cycles per allocation and no lock contention
/// between worker threads on the request path (measured in bench/RESULTS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Two rustls providers are linked (aws-lc-rs by the object store, ring by the mailer), so
    // rustls cannot pick one itself: TLS to Redis (`rediss://`) uses the process default.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let settings = match Settings::load(cli.config.clone()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    // Bulk commands run statements that are slow on purpose (thousands of rows each): sqlx's
    // slow-statement warnings would only print their SQL text.
    let filter = if cli.runs_bulk_statements() {
        format!("{},sqlx::query=error", settings.log_level)
    } else {
        settings.log_level.clone()
    };
    // Held until `main` returns: dropping it writes the lines still queued.
    let _logs = match telemetry::init_logging(settings.log_format, &filter) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    // Held until `main` returns: dropping it sends the error reports still queued.
    let tracked = if cli.tracks_errors() {
        telemetry::error_tracking::init(&settings)
    } else {
        Ok(telemetry::error_tracking::ErrorTracking::off())
    };
    let _errors = match tracked {
        Ok(tracking) => tracking,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    match cli.run(settings).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "outgrow failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
