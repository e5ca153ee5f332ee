//! `outgrow shards`: the shard map, and moving a bucket between shards online.

use std::process::ExitCode;

use anyhow::bail;
use outgrow_domain::UserId;
use outgrow_platform::config::Settings;

use super::ShardsCommand;

/// `outgrow shards show|move`.
pub(super) async fn run(settings: &Settings, command: ShardsCommand) -> anyhow::Result<ExitCode> {
    let (db, shards) = super::database::open_store(settings).await?;
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
