//! The `outgrow` command line: serve, worker, jobs, check, migrate, seed, shards, admin.
//!
//! Every subcommand loads the same layered configuration, so `outgrow check` validates exactly
//! what `outgrow serve` would run with.

use std::{io::BufRead, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{Parser, Subcommand};
use outgrow_domain::{Email, Password, Role, UserId, UserName};
use outgrow_platform::config::Settings;

use crate::{
    auth::{keys, password::PasswordHasher},
    db::Database,
    repo::NewUser,
};

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

    /// Runs the chosen subcommand.
    pub async fn run(self, mut settings: Settings) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve { listen, no_workers } => {
                if let Some(listen) = listen {
                    settings.listen = listen;
                }
                crate::server::serve(settings, !no_workers).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Worker => {
                crate::server::work(settings).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Jobs { command } => jobs(&settings, command).await,
            Command::Check => check(&settings).await,
            Command::Migrate => {
                let db = Database::open(&settings).await?;
                let applied = db.migrate().await?;
                println!(
                    "{}: {applied} migration(s) applied, schema up to date",
                    db.describe()
                );
                let shards = crate::db::shards::Shards::new(&db, &settings)?;
                let applied = shards.migrate().await?;
                shards.load_map().await?;
                println!("shards {}: {applied} migration(s) applied", shards.describe());
                Ok(ExitCode::SUCCESS)
            }
            Command::Seed {
                users,
                products,
                orders,
                batch,
            } => seed(&settings, users, products, orders, batch).await,
            Command::Shards { command } => shards(&settings, command).await,
            Command::Admin { command } => admin(&settings, command).await,
        }
    }
}

async fn check(settings: &Settings) -> anyhow::Result<ExitCode> {
    println!(
        "configuration: ok (listen {}, data dir {})",
        settings.listen,
        settings.data_dir.display()
    );
    let mut problems = 0;
    let mut report = |what: &str, result: anyhow::Result<String>| match result {
        Ok(detail) => println!("{what}: ok ({detail})"),
        Err(error) => {
            problems += 1;
            println!("{what}: FAILED: {error:#}");
        }
    };
    report("data dir", writable(&settings.data_dir));
    report(
        "jwt keys",
        keys::load(settings.jwt_keys.as_ref(), &settings.data_dir).map(|keys| match keys {
            Some(keys) => {
                let kids: Vec<&str> = keys.iter().map(|key| key.kid.as_str()).collect();
                format!("{} key(s), signing with {:?}", keys.len(), kids[0])
            }
            None => "none yet; one is generated into the data dir at the first start".to_owned(),
        }),
    );
    let database = async {
        let db = Database::open(settings).await?;
        db.ping(Duration::from_secs(3)).await?;
        Ok::<_, anyhow::Error>(db.describe())
    };
    report("database", database.await);
    let sharding = async {
        let db = Database::open(settings).await?;
        let shards = crate::db::shards::Shards::new(&db, settings)?;
        for shard in shards.all() {
            crate::db::sql::with_pool!(&shard.pool, |pool, text| {
                tokio::time::timeout(
                    Duration::from_secs(3),
                    sqlx::query(text("SELECT 1")).execute(pool),
                )
                .await
                .with_context(|| format!("{} did not answer within 3 s", shard.name))?
                .with_context(|| format!("{} failed", shard.name))?;
            });
        }
        // Read-only: the map itself is created (and migrated) by the first start.
        Ok::<_, anyhow::Error>(format!(
            "{} shard database(s) reachable: {}",
            shards.all().len(),
            shards
                .all()
                .iter()
                .map(|shard| format!("{} ({})", shard.name, shard.location))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    };
    report("shards", sharding.await);
    match outgrow_platform::redis_client::RedisClient::from_settings(settings) {
        Ok(None) => report(
            "redis",
            Ok("not configured: cache, sessions and rate limits in-process".into()),
        ),
        Ok(Some(client)) => report("redis", check_redis(&client, &settings.redis_key_prefix).await),
        Err(error) => report("redis", Err(error)),
    }
    let objects = async {
        let storage = outgrow_platform::storage::ObjectStorage::from_settings(settings)?;
        storage.ping().await?;
        Ok::<_, anyhow::Error>(storage.describe().to_owned())
    };
    report("object storage", objects.await);
    let mail = async {
        let mailer = crate::mail::Mailer::from_settings(settings)?;
        mailer.test_connection().await?;
        Ok::<_, anyhow::Error>(mailer.describe())
    };
    report("mail", mail.await);
    if problems == 0 {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{problems} check(s) failed");
        Ok(ExitCode::FAILURE)
    }
}

/// `outgrow check`'s Redis line: reachable (every master of a cluster answers `PING`) and, for
/// a cluster, its own account of its state, which must be `ok`.
async fn check_redis(
    client: &outgrow_platform::redis_client::RedisClient,
    prefix: &str,
) -> anyhow::Result<String> {
    let Some(cluster) = client.cluster_report().await? else {
        client.ping().await?;
        return Ok(format!("single server reachable, keys prefixed {prefix:?}"));
    };
    if !cluster.is_ok() {
        bail!("cluster is not serving every slot: {}", cluster.summary());
    }
    client
        .ping()
        .await
        .with_context(|| format!("not every master answered PING: {}", cluster.summary()))?;
    Ok(format!(
        "cluster: {}, keys prefixed {prefix:?}",
        cluster.summary()
    ))
}

/// Opens the database (migrated) and the shards (map read) for a one-off command.
async fn open_store(settings: &Settings) -> anyhow::Result<(Database, crate::db::shards::Shards)> {
    let db = Database::open(settings).await?;
    db.migrate().await?;
    let shards = crate::db::shards::Shards::new(&db, settings)?;
    shards.migrate().await?;
    shards.load_map().await?;
    Ok((db, shards))
}

async fn seed(
    settings: &Settings,
    users: u64,
    products: u64,
    orders: u64,
    batch: usize,
) -> anyhow::Result<ExitCode> {
    use crate::store::seed::{SEED_PASSWORD, SeedPlan};
    use std::io::IsTerminal;
    let (db, shards) = open_store(settings).await?;
    println!(
        "seeding {users} users, {products} products and {orders} orders into {} (shards: {})",
        db.describe(),
        shards.describe()
    );
    let hasher = PasswordHasher::new(1).await?;
    let hash = hasher.hash(Password::parse(SEED_PASSWORD, None)?).await?;
    let plan = SeedPlan {
        users,
        products,
        orders,
        batch,
        progress: std::io::stderr().is_terminal(),
    };
    let report = crate::store::seed::seed(&db.primary_pool(), &shards, &hash, plan).await?;
    for (what, rows, elapsed) in &report.phases {
        let rate = if elapsed.as_secs_f64() > 0.0 {
            *rows as f64 / elapsed.as_secs_f64()
        } else {
            0.0
        };
        println!(
            "{what:>8}: {rows} rows in {:.1} s ({rate:.0} rows/s)",
            elapsed.as_secs_f64()
        );
    }
    println!("total: {:.0} rows/s", report.rate());
    if let Some(email) = report.first_email {
        println!("sign in as {email} (or any seed-…@example.test) with the password {SEED_PASSWORD:?}");
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn shards(settings: &Settings, command: ShardsCommand) -> anyhow::Result<ExitCode> {
    let (db, shards) = open_store(settings).await?;
    match command {
        ShardsCommand::Show { user } => {
            let map = shards.map();
            let counts = map.bucket_counts(shards.all().len() as u16);
            for (shard, buckets) in shards.all().iter().zip(counts) {
                println!("{} ({}): {buckets} bucket(s)", shard.name, shard.location);
            }
            let moving: Vec<u16> = map
                .rows()
                .filter(|(_, _, moving)| *moving)
                .map(|(bucket, _, _)| bucket)
                .collect();
            if !moving.is_empty() {
                println!("moving: {moving:?}");
            }
            if let Some(user) = user {
                let route = shards.route(UserId(user));
                println!("user {user}: bucket {} on {}", route.bucket, route.shard.name);
            }
        }
        ShardsCommand::Move { bucket, to, settle } => {
            if bucket >= outgrow_platform::shard::BUCKETS {
                bail!("--bucket must be 0 to {}", outgrow_platform::shard::BUCKETS - 1);
            }
            let settle = settle.unwrap_or(settings.shard_map_refresh * 2 + settings.request_timeout);
            let started = std::time::Instant::now();
            let report =
                crate::store::rebalance::move_bucket(&shards, bucket, to, settle, |line| println!("{line}"))
                    .await?;
            println!(
                "done in {:.1} s: {} orders, {} items, {} idempotency keys moved from shard {} to shard {}",
                started.elapsed().as_secs_f64(),
                report.orders,
                report.items,
                report.keys,
                report.from,
                report.to
            );
        }
    }
    shards.close().await;
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn jobs(settings: &Settings, command: JobsCommand) -> anyhow::Result<ExitCode> {
    use outgrow_platform::jobs::{JobFilter, JobState};
    let db = Database::open(settings).await?;
    let store = db.jobs();
    let now = Utc::now();
    let code = match command {
        JobsCommand::List { state, queue, limit } => {
            let state = match state.as_deref() {
                None => None,
                Some(text) => Some(JobState::parse(text).ok_or_else(|| {
                    anyhow::anyhow!("--state must be one of ready, running, done, dead, cancelled")
                })?),
            };
            let jobs = store.list(&JobFilter { state, queue, limit }).await?;
            println!(
                "{:<36}  {:<9}  {:<8}  {:<18}  {:>8}  {:<25}  last error",
                "id", "state", "queue", "name", "attempts", "run at"
            );
            for job in &jobs {
                println!(
                    "{:<36}  {:<9}  {:<8}  {:<18}  {:>3} of {:<2}  {:<25}  {}",
                    job.id,
                    job.state.as_str(),
                    job.queue,
                    job.name,
                    job.attempts,
                    job.max_attempts,
                    job.run_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    job.last_error.as_deref().unwrap_or("")
                );
            }
            println!("{} job(s)", jobs.len());
            ExitCode::SUCCESS
        }
        JobsCommand::Show { id } => match store.get(id).await? {
            Some(job) => {
                println!("{}", serde_json::to_string_pretty(&job)?);
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no job {id}");
                ExitCode::FAILURE
            }
        },
        JobsCommand::Retry { id } => {
            if store.retry(id, now).await? {
                println!("job {id} is ready again (attempts reset)");
                ExitCode::SUCCESS
            } else {
                eprintln!("job {id} is not dead or cancelled (or does not exist)");
                ExitCode::FAILURE
            }
        }
        JobsCommand::Cancel { id } => {
            if store.cancel(id, now).await? {
                println!("job {id} cancelled");
                ExitCode::SUCCESS
            } else {
                eprintln!("job {id} is not waiting to run (or does not exist)");
                ExitCode::FAILURE
            }
        }
        JobsCommand::Stats => {
            for queue in store.stats(now).await? {
                println!(
                    "{}: {} ready, {} running, {} dead, oldest due job waiting {:.1} s",
                    queue.queue, queue.ready, queue.running, queue.dead, queue.oldest_ready_seconds
                );
            }
            ExitCode::SUCCESS
        }
    };
    db.close().await;
    Ok(code)
}

fn writable(dir: &std::path::Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let probe = dir.join(".outgrow-check");
    std::fs::write(&probe, b"ok").with_context(|| format!("writing in {}", dir.display()))?;
    std::fs::remove_file(&probe).ok();
    Ok(dir.display().to_string())
}

async fn admin(settings: &Settings, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let db = Database::open(settings).await?;
    db.migrate().await?;
    let users = db.users();
    match command {
        AdminCommand::Create { email, name } => {
            let email = Email::parse(&email).map_err(|error| anyhow::anyhow!("--email: {error}"))?;
            let name = UserName::parse(&name).map_err(|error| anyhow::anyhow!("--name: {error}"))?;
            let password = read_admin_password()?;
            let password = Password::parse(&password, Some(&email))
                .map_err(|error| anyhow::anyhow!("password: {error}"))?;
            let hasher = PasswordHasher::new(1).await?;
            let password_hash = hasher.hash(password).await?;
            let user = users
                .create(
                    NewUser {
                        id: UserId::new(),
                        email,
                        name,
                        password_hash,
                        role: Role::Admin,
                        now: Utc::now(),
                    },
                    &[],
                )
                .await
                .map_err(|error| match error {
                    crate::repo::StoreError::Conflict(_) => {
                        anyhow::anyhow!(
                            "an account with this e-mail exists; use `outgrow admin promote --email …`"
                        )
                    }
                    other => other.into(),
                })?;
            println!("created admin {} ({})", user.email, user.id);
        }
        AdminCommand::Promote { email } => {
            let email = Email::parse(&email).map_err(|error| anyhow::anyhow!("--email: {error}"))?;
            let Some(user) = users.set_role(&email, Role::Admin, Utc::now()).await? else {
                bail!("no account with e-mail {email}");
            };
            // Running servers cache user records: with Redis, tell them all to drop this one.
            if let Some(redis) = outgrow_platform::redis_client::RedisClient::from_settings(settings)? {
                outgrow_platform::cache::Cache::tiered(1, redis, settings.cache_local_ttl)
                    .invalidate(crate::caches::USERS, &user.id.to_string())
                    .await;
            }
            println!(
                "{} ({}) is now an admin; it takes effect at the next sign-in",
                user.email, user.id
            );
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

fn read_admin_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("OUTGROW_ADMIN_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password: set OUTGROW_ADMIN_PASSWORD or pipe it on standard input");
    }
    Ok(password)
}
