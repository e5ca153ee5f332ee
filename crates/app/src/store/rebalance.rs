//! Moving a bucket between shards (`outgrow shards move`), online.
//!
//! 1. Mark the bucket `moving`, then wait `settle` — longer than every instance's
//!    `shard_map_refresh` plus the longest request — so no write to the bucket is in flight:
//!    from now on its writes answer 503 with `Retry-After`, its reads keep working.
//! 2. Delete whatever an earlier, aborted move left of the bucket on the target, then copy its
//!    orders, their items and its idempotency keys there, and check the counts.
//! 3. Give the bucket to the target (and end `moving`), wait `settle` again so every instance
//!    reads from the target, and only then delete the bucket's rows from the source.
//!
//! A failure before step 3 clears `moving` and leaves the bucket where it was; rerunning the
//! move is safe. Events stay where they were written: analytics read every shard anyway.

use std::time::Duration;

use sqlx::PgPool;

use crate::db::{shards::Shards, sql::SqlPool};

/// What a move copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveReport {
    pub from: u16,
    pub to: u16,
    pub orders: u64,
    pub items: u64,
    pub keys: u64,
}

/// Moves `bucket` to shard `to` (see the module docs). `say` reports progress.
pub async fn move_bucket(
    shards: &Shards,
    bucket: u16,
    to: u16,
    settle: Duration,
    say: impl Fn(String),
) -> anyhow::Result<MoveReport> {
    shards.load_map().await?;
    let map = shards.map();
    let from = map.shard_of(bucket);
    let target = shards
        .get(to)
        .ok_or_else(|| anyhow::anyhow!("there is no shard {to}: {} configured", shards.all().len()))?;
    if from == to {
        say(format!("bucket {bucket} is already on shard {to}; nothing to do"));
        return Ok(MoveReport {
            from,
            to,
            ..MoveReport::default()
        });
    }
    let source = shards
        .get(from)
        .ok_or_else(|| anyhow::anyhow!("the map names shard {from}, which is not configured"))?;
    let (SqlPool::Postgres(source_pool), SqlPool::Postgres(target_pool)) = (&source.pool, &target.pool)
    else {
        anyhow::bail!("buckets move between PostgreSQL shards only");
    };
    shards.set_moving(bucket, true).await?;
    say(format!(
        "bucket {bucket}: writes paused; waiting {settle:?} for every instance to see it"
    ));
    tokio::time::sleep(settle).await;
    let copied = copy(source_pool, target_pool, bucket).await;
    let report = match copied {
        Ok((orders, items, keys)) => MoveReport {
            from,
            to,
            orders,
            items,
            keys,
        },
        Err(error) => {
            shards.set_moving(bucket, false).await?;
            return Err(error.context(format!("copying bucket {bucket}; it stays on shard {from}")));
        }
    };
    say(format!(
        "bucket {bucket}: copied {} orders, {} items, {} idempotency keys to shard {to}",
        report.orders, report.items, report.keys
    ));
    shards.assign(bucket, to).await?;
    say(format!(
        "bucket {bucket}: now on shard {to}; waiting {settle:?} before deleting it from shard {from}"
    ));
    tokio::time::sleep(settle).await;
    delete(source_pool, bucket).await?;
    shards.load_map().await?;
    say(format!("bucket {bucket}: moved from shard {from} to shard {to}"));
    Ok(report)
}

async fn copy(source: &PgPool, target: &PgPool, bucket: u16) -> anyhow::Result<(u64, u64, u64)> {
    let bucket = i32::from(bucket);
    delete(target, bucket as u16).await?;
    type OrderRow = (
        uuid::Uuid,
        uuid::Uuid,
        String,
        i64,
        String,
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    );
    let mut tx = target.begin().await?;
    let mut after = uuid::Uuid::nil();
    let (mut orders, mut items) = (0u64, 0u64);
    loop {
        let page: Vec<OrderRow> = sqlx::query_as(
            "SELECT id, user_id, status, total_minor, currency, created_at, cancelled_at
             FROM orders WHERE bucket = $1 AND id > $2 ORDER BY id LIMIT 1000",
        )
        .bind(bucket)
        .bind(after)
        .fetch_all(source)
        .await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        let ids: Vec<uuid::Uuid> = page.iter().map(|row| row.0).collect();
        let mut columns: (Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>) = Default::default();
        for (id, user, status, total, currency, created, cancelled) in page {
            columns.0.push(id);
            columns.1.push(user);
            columns.2.push(status);
            columns.3.push(total);
            columns.4.push(currency);
            columns.5.push(created);
            columns.6.push(cancelled);
        }
        orders += sqlx::query(
            "INSERT INTO orders (id, user_id, bucket, status, total_minor, currency, created_at, cancelled_at)
             SELECT i, u, $8, s, t, c, a, x
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], $7::timestamptz[])
                  AS o(i, u, s, t, c, a, x)",
        )
        .bind(columns.0)
        .bind(columns.1)
        .bind(columns.2)
        .bind(columns.3)
        .bind(columns.4)
        .bind(columns.5)
        .bind(columns.6)
        .bind(bucket)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let lines: Vec<(uuid::Uuid, uuid::Uuid, String, i32, i64)> = sqlx::query_as(
            "SELECT order_id, product_id, name, quantity, unit_price_minor FROM order_items WHERE order_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(source)
        .await?;
        let mut columns: (Vec<_>, Vec<_>, Vec<_>, Vec<_>, Vec<_>) = Default::default();
        for (order, product, name, quantity, price) in lines {
            columns.0.push(order);
            columns.1.push(product);
            columns.2.push(name);
            columns.3.push(quantity);
            columns.4.push(price);
        }
        items += sqlx::query(
            "INSERT INTO order_items (order_id, product_id, name, quantity, unit_price_minor)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::bigint[])",
        )
        .bind(columns.0)
        .bind(columns.1)
        .bind(columns.2)
        .bind(columns.3)
        .bind(columns.4)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    type KeyRow = (
        uuid::Uuid,
        String,
        Vec<u8>,
        uuid::Uuid,
        Option<i32>,
        Option<serde_json::Value>,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    );
    let keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT user_id, key, request_hash, order_id, status_code, response, locked_until, created_at
         FROM idempotency_keys WHERE bucket = $1",
    )
    .bind(bucket)
    .fetch_all(source)
    .await?;
    let mut copied_keys = 0;
    for (user, key, hash, order, status, response, locked, created) in keys {
        copied_keys += sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, bucket, request_hash, order_id, status_code, response, locked_until, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(user)
        .bind(key)
        .bind(bucket)
        .bind(hash)
        .bind(order)
        .bind(status)
        .bind(response)
        .bind(locked)
        .bind(created)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    // The copy must be complete before the bucket changes hands.
    let (source_orders, source_items): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM orders WHERE bucket = $1),
                (SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.bucket = $1)",
    )
    .bind(bucket)
    .fetch_one(source)
    .await?;
    if source_orders as u64 != orders || source_items as u64 != items {
        anyhow::bail!(
            "the copy is incomplete ({orders} of {source_orders} orders, {items} of {source_items} items)"
        );
    }
    tx.commit().await?;
    Ok((orders, items, copied_keys))
}

async fn delete(pool: &PgPool, bucket: u16) -> Result<(), sqlx::Error> {
    let bucket = i32::from(bucket);
    let mut tx = pool.begin().await?;
    // Items go with their orders (ON DELETE CASCADE).
    sqlx::query("DELETE FROM orders WHERE bucket = $1")
        .bind(bucket)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM idempotency_keys WHERE bucket = $1")
        .bind(bucket)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
