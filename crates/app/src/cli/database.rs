//! `outgrow migrate` and `outgrow seed`, and opening the store for a one-off command.

use std::process::ExitCode;

use outgrow_domain::Password;
use outgrow_platform::config::Settings;

use crate::{auth::password::PasswordHasher, db::Database};

/// `outgrow migrate`: the primary's migrations, then every shard's.
pub(super) async fn migrate(settings: &Settings) -> anyhow::Result<ExitCode> {
    let db = Database::open(settings).await?;
    let applied = db.migrate().await?;
    println!(
        "{}: {applied} migration(s) applied, schema up to date",
        db.describe()
    );
    let shards = crate::db::shards::Shards::new(&db, settings)?;
    let applied = shards.migrate().await?;
    shards.load_map().await?;
    println!("shards {}: {applied} migration(s) applied", shards.describe());
    Ok(ExitCode::SUCCESS)
}

/// Opens the database (migrated) and the shards (map read) for a one-off command.
pub(super) async fn open_store(settings: &Settings) -> anyhow::Result<(Database, crate::db::shards::Shards)> {
    let db = Database::open(settings).await?;
    db.migrate().await?;
    let shards = crate::db::shards::Shards::new(&db, settings)?;
    shards.migrate().await?;
    shards.load_map().await?;
    Ok((db, shards))
}

/// `outgrow seed`: demo users, products and orders, with a progress bar on a terminal.
pub(super) async fn seed(
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
