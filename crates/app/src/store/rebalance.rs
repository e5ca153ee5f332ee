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

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    bind_columns,
    orders::{OrderItemRow, OrderRow},
    statements,
};
use crate::db::{
    shards::Shards,
    sql::{SqlPool, for_postgres},
};

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

statements! {
    /// A page of a bucket's orders, after a keyset cursor (source).
    ORDERS_PAGE("rebalance.orders_page") =
        "SELECT id, user_id, status, total_minor, currency, created_at, cancelled_at FROM orders \
         WHERE bucket = $1 AND id > $2 ORDER BY id LIMIT 1000";
    /// Writes a page of orders, one array per column (target).
    ORDERS_INSERT("rebalance.orders_insert") =
        "INSERT INTO orders (id, user_id, bucket, status, total_minor, currency, created_at, cancelled_at) \
         SELECT i, u, $8, s, t, c, a, x \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], \
                     $7::timestamptz[]) AS o(i, u, s, t, c, a, x)";
    /// The lines of a page of orders (source).
    ITEMS_OF("rebalance.items_of") =
        "SELECT order_id, product_id, name, quantity, unit_price_minor FROM order_items \
         WHERE order_id = ANY($1)";
    /// Writes the lines of a page, one array per column (target).
    ITEMS_INSERT("rebalance.items_insert") =
        "INSERT INTO order_items (order_id, product_id, name, quantity, unit_price_minor) SELECT * \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::bigint[])";
    /// A bucket's idempotency keys (source).
    KEYS_OF("rebalance.keys_of") =
        "SELECT user_id, key, request_hash, order_id, status_code, response, locked_until, created_at \
         FROM idempotency_keys WHERE bucket = $1";
    /// Writes one idempotency key (target).
    KEY_INSERT("rebalance.key_insert") =
        "INSERT INTO idempotency_keys \
         (user_id, key, bucket, request_hash, order_id, status_code, response, locked_until, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    /// A bucket's orders and lines, counted (source, before the bucket changes hands).
    BUCKET_COUNTS("rebalance.bucket_counts") =
        "SELECT (SELECT count(*) FROM orders WHERE bucket = $1), \
                (SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.bucket = $1)";
    /// Deletes a bucket's orders; their lines go with them (`ON DELETE CASCADE`).
    BUCKET_DELETE_ORDERS("rebalance.delete_orders") = "DELETE FROM orders WHERE bucket = $1";
    /// Deletes a bucket's idempotency keys.
    BUCKET_DELETE_KEYS("rebalance.delete_keys") = "DELETE FROM idempotency_keys WHERE bucket = $1";
}

/// An idempotency key as stored, copied as is.
#[derive(sqlx::FromRow)]
struct KeyRow {
    user_id: Uuid,
    key: String,
    request_hash: Vec<u8>,
    order_id: Uuid,
    status_code: Option<i32>,
    response: Option<serde_json::Value>,
    locked_until: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

async fn copy(source: &PgPool, target: &PgPool, bucket: u16) -> anyhow::Result<(u64, u64, u64)> {
    delete(target, bucket).await?;
    let bucket = i32::from(bucket);
    let mut tx = target.begin().await?;
    let mut after = Uuid::nil();
    let (mut orders, mut items) = (0u64, 0u64);
    loop {
        let page: Vec<OrderRow> = sqlx::query_as(for_postgres(ORDERS_PAGE))
            .bind(bucket)
            .bind(after)
            .fetch_all(source)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        orders += bind_columns!(
            sqlx::query(for_postgres(ORDERS_INSERT)),
            page,
            |order| order.id,
            |order| order.user_id.0,
            |order| order.status.as_str(),
            |order| order.total_minor,
            |order| order.currency.as_str(),
            |order| order.created_at,
            |order| order.cancelled_at,
        )
        .bind(bucket)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let ids: Vec<Uuid> = page.iter().map(|order| order.id).collect();
        let lines: Vec<OrderItemRow> = sqlx::query_as(for_postgres(ITEMS_OF))
            .bind(&ids)
            .fetch_all(source)
            .await?;
        items += bind_columns!(
            sqlx::query(for_postgres(ITEMS_INSERT)),
            lines,
            |line| line.order_id,
            |line| line.product_id,
            |line| line.name.as_str(),
            |line| line.quantity,
            |line| line.unit_price_minor,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    let keys: Vec<KeyRow> = sqlx::query_as(for_postgres(KEYS_OF))
        .bind(bucket)
        .fetch_all(source)
        .await?;
    let mut copied_keys = 0;
    for key in keys {
        copied_keys += sqlx::query(for_postgres(KEY_INSERT))
            .bind(key.user_id)
            .bind(key.key)
            .bind(bucket)
            .bind(key.request_hash)
            .bind(key.order_id)
            .bind(key.status_code)
            .bind(key.response)
            .bind(key.locked_until)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    // The copy must be complete before the bucket changes hands.
    let (source_orders, source_items): (i64, i64) = sqlx::query_as(for_postgres(BUCKET_COUNTS))
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

/// Deletes `bucket`'s orders (their items cascade) and idempotency keys, in one transaction.
async fn delete(pool: &PgPool, bucket: u16) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for statement in [BUCKET_DELETE_ORDERS, BUCKET_DELETE_KEYS] {
        sqlx::query(for_postgres(statement))
            .bind(i32::from(bucket))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
