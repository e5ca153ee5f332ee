//! `outgrow check`: validates the configuration and reaches every backend it names (data dir,
//! keys, database, shards, Redis, object storage, mail), one line each; non-zero on a problem.

use std::{process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use outgrow_platform::config::Settings;

use crate::{auth::keys, db::Database};

/// `outgrow check`: every backend the configuration names, one line each.
pub(super) async fn run(settings: &Settings) -> anyhow::Result<ExitCode> {
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

fn writable(dir: &std::path::Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let probe = dir.join(".outgrow-check");
    std::fs::write(&probe, b"ok").with_context(|| format!("writing in {}", dir.display()))?;
    std::fs::remove_file(&probe).ok();
    Ok(dir.display().to_string())
}
