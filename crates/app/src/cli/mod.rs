//! The `outgrow` command line: serve, worker, jobs, check, migrate, seed, shards, admin.
//!
//! Every subcommand loads the same layered configuration, so `outgrow check` validates exactly
//! what `outgrow serve` would run with. This module holds the clap definitions and the
//! dispatch; each group of subcommands has a module of its own (`serve` and `worker` are
//! [`crate::server`]'s).

mod admin;
mod check;
mod database;
mod healthcheck;
mod jobs;
mod shards;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use outgrow_platform::config::Settings;

/// Outgrow: a small online store built to scale.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Configuration file (default: ./outgrow.toml when present). Environment variables
    /// (OUTGROW_*) override it.
    #[arg(long, global = true, env = "OUTGROW_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (and run the job workers, unless --no-workers).
    Serve {
        /// Override `listen` (OUTGROW_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Do not run job workers in this process (run `outgrow worker` elsewhere).
        #[arg(long)]
        no_workers: bool,
        /// On an empty catalog, first add a demo store: 24 products with photographs and an
        /// administrator (admin@example.test, its password printed once).
        #[arg(long)]
        demo: bool,
    },
    /// Run job workers only (scale them apart from the API).
    Worker,
    /// Inspect and steer the job queue.
    Jobs {
        /// What to do.
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Validate the configuration and reach every backend; exits non-zero on a problem.
    Check,
    /// Apply pending database migrations (to the primary and every shard).
    Migrate,
    /// Ask the local listener's /healthz (at `listen`); exit 0 on a 200 answer. The
    /// container image's HEALTHCHECK.
    Healthcheck {
        /// The path to ask.
        #[arg(long, default_value = "/healthz")]
        path: String,
        /// Give up (unhealthy) after this long.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Fill the database with demo data: users, products and orders (with a progress bar).
    Seed {
        /// Users to create (all with the password `seeded-password`).
        #[arg(long, default_value_t = 1_000)]
        users: u64,
        /// Products to create.
        #[arg(long, default_value_t = 100)]
        products: u64,
        /// Orders to create, spread over the last 30 days, products Zipf-distributed.
        #[arg(long, default_value_t = 10_000)]
        orders: u64,
        /// Rows per transaction.
        #[arg(long, default_value_t = 5_000)]
        batch: usize,
    },
    /// Inspect the shard map and move buckets between shards.
    Shards {
        /// What to do.
        #[command(subcommand)]
        command: ShardsCommand,
    },
    /// Manage administrators (never possible over HTTP).
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// `outgrow jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs in this state: ready, running, done, dead, cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one job in full, as JSON.
    Show {
        /// Job id.
        id: uuid::Uuid,
    },
    /// Send a dead or cancelled job back to the queue with fresh attempts.
    Retry {
        /// Job id.
        id: uuid::Uuid,
    },
    /// Cancel a job that has not started.
    Cancel {
        /// Job id.
        id: uuid::Uuid,
    },
    /// Queue depth, running and dead jobs, and the age of the oldest due job, per queue.
    Stats,
}

/// `outgrow shards …`.
#[derive(Debug, Subcommand)]
pub enum ShardsCommand {
    /// Buckets per shard, and the bucket and shard of a user.
    Show {
        /// Also show where this user's orders live.
        #[arg(long)]
        user: Option<uuid::Uuid>,
    },
    /// Move a bucket to another shard, online (its writes pause for about twice --settle).
    Move {
        /// The bucket (0–1023; `outgrow shards show --user …` tells a user's).
        #[arg(long)]
        bucket: u16,
        /// The shard to move it to (an index into database_shard_urls).
        #[arg(long)]
        to: u16,
        /// How long every instance needs to see a map change and finish the requests it
        /// started (default: 2 × shard_map_refresh + request_timeout).
        #[arg(long, value_parser = humantime::parse_duration)]
        settle: Option<Duration>,
    },
}

/// `outgrow admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an administrator. The password is read from OUTGROW_ADMIN_PASSWORD, else from
    /// the first line of standard input.
    Create {
        /// E-mail address (the login name).
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
    /// Give an existing account the admin role (takes effect at its next sign-in).
    Promote {
        /// E-mail address of the account.
        #[arg(long)]
        email: String,
    },
}

impl Cli {
    /// Whether the command writes in bulk (`seed`, `shards move`).
    pub fn runs_bulk_statements(&self) -> bool {
        matches!(
            self.command,
            Command::Seed { .. }
                | Command::Shards {
                    command: ShardsCommand::Move { .. }
                }
        )
    }

    /// Whether the command is a long-running process whose errors are tracked (`serve`,
    /// `worker`, `migrate`); a probe run every few seconds is not.
    pub fn tracks_errors(&self) -> bool {
        matches!(
            self.command,
            Command::Serve { .. } | Command::Worker | Command::Migrate
        )
    }

    /// Runs the chosen subcommand.
    pub async fn run(self, mut settings: Settings) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve {
                listen,
                no_workers,
                demo,
            } => {
                if let Some(listen) = listen {
                    settings.listen = listen;
                }
                crate::server::serve(settings, !no_workers, demo).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Worker => {
                crate::server::work(settings).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Jobs { command } => jobs::run(&settings, command).await,
            Command::Check => check::run(&settings).await,
            Command::Migrate => database::migrate(&settings).await,
            Command::Healthcheck { path, timeout } => healthcheck::run(&settings, &path, timeout).await,
            Command::Seed {
                users,
                products,
                orders,
                batch,
            } => database::seed(&settings, users, products, orders, batch).await,
            Command::Shards { command } => shards::run(&settings, command).await,
            Command::Admin { command } => admin::run(&settings, command).await,
        }
    }
}
