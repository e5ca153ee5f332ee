//! Analytics: hourly event counts by type and product sales, rolled up from every shard into
//! the primary by the `analytics.rollup` job, and read from there by the admin API.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use uuid::Uuid;

use super::statements;
use crate::{
    db::{
        shards::Shards,
        sql::{SqlPool, for_postgres, for_sqlite, with_pool},
    },
    repo::StoreError,
};

statements! {
    /// A shard's hourly event counts since `$1` (the database groups; only sums travel).
    /// SQLite stores timestamps as RFC 3339 text: the hour is its first 13 characters.
    SHARD_EVENT_HOURS("analytics.shard_event_hours") =
        "SELECT date_trunc('hour', occurred_at, 'UTC'), type, count(*) FROM events WHERE occurred_at >= $1 \
         GROUP BY 1, 2",
        sqlite = "SELECT substr(occurred_at, 1, 13), type, count(*) FROM events WHERE occurred_at >= $1 \
                  GROUP BY 1, 2";
    /// A shard's hourly product sales since `$1` (as text on SQLite, as above).
    SHARD_SALE_HOURS("analytics.shard_sale_hours") =
        "SELECT date_trunc('hour', o.created_at, 'UTC'), i.product_id, count(*), sum(i.quantity)::bigint \
         FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.created_at >= $1 \
         AND o.status = 'placed' GROUP BY 1, 2",
        sqlite = "SELECT substr(o.created_at, 1, 13), i.product_id, count(*), sum(i.quantity) FROM orders o \
                  JOIN order_items i ON i.order_id = o.id WHERE o.created_at >= $1 AND o.status = 'placed' \
                  GROUP BY 1, 2";
    /// Clears the recomputed hours of event counts.
    CLEAR_EVENT_COUNTS("analytics.clear_event_counts") =
        "DELETE FROM analytics_event_counts WHERE hour >= $1";
    /// Clears the recomputed hours of product sales.
    CLEAR_PRODUCT_SALES("analytics.clear_product_sales") =
        "DELETE FROM analytics_product_sales WHERE hour >= $1";
    /// Stores an hourly event count.
    EVENT_COUNT_INSERT("analytics.event_count_insert") =
        "INSERT INTO analytics_event_counts (hour, event_type, count) VALUES ($1, $2, $3)";
    /// Stores an hourly product sale.
    PRODUCT_SALE_INSERT("analytics.product_sale_insert") =
        "INSERT INTO analytics_product_sales (hour, product_id, orders, units) VALUES ($1, $2, $3, $4)";
    /// Hourly event counts since `$1`, oldest first.
    EVENT_COUNTS("analytics.event_counts") =
        "SELECT hour, event_type, count FROM analytics_event_counts WHERE hour >= $1 \
         ORDER BY hour, event_type";
    /// The best-selling products since `$1`, by units.
    TOP_PRODUCTS("analytics.top_products") =
        "SELECT s.product_id, p.name, \
                CAST(sum(s.orders) AS bigint) AS orders, CAST(sum(s.units) AS bigint) AS units \
         FROM analytics_product_sales s LEFT JOIN products p ON p.id = s.product_id WHERE s.hour >= $1 \
         GROUP BY s.product_id, p.name ORDER BY units DESC, s.product_id LIMIT $2";
}

/// What one roll-up wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollupSummary {
    /// `(hour, event type)` rows.
    pub event_rows: usize,
    /// `(hour, product)` rows.
    pub sales_rows: usize,
}

/// Hourly counts of one event type.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventCount {
    pub hour: DateTime<Utc>,
    pub event_type: String,
    pub count: i64,
}

/// A product's sales over a window.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProductSales {
    pub product_id: Uuid,
    /// The product's current name (none once deleted).
    pub name: Option<String>,
    pub orders: i64,
    pub units: i64,
}

/// The start of the hour holding `at`.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// Recomputes the last `hours` hours (the current one included) from every shard and replaces
/// them on the primary. Idempotent: running it twice writes the same rows.
pub async fn roll_up(primary: &SqlPool, shards: &Shards, hours: u32) -> Result<RollupSummary, StoreError> {
    let since = hour_of(Utc::now()) - TimeDelta::hours(i64::from(hours) - 1);
    let mut events: BTreeMap<(DateTime<Utc>, String), i64> = BTreeMap::new();
    let mut sales: BTreeMap<(DateTime<Utc>, Uuid), (i64, i64)> = BTreeMap::new();
    for shard in shards.all() {
        let (shard_events, shard_sales) = gather(&shard.read_pool, since).await?;
        for (hour, kind, count) in shard_events {
            *events.entry((hour, kind)).or_default() += count;
        }
        for (hour, product, orders, units) in shard_sales {
            let entry = sales.entry((hour, product)).or_default();
            entry.0 += orders;
            entry.1 += units;
        }
    }
    with_pool!(primary, |pool, text| {
        let mut tx = pool.begin().await?;
        sqlx::query(text(CLEAR_EVENT_COUNTS))
            .bind(since)
            .execute(&mut *tx)
            .await?;
        sqlx::query(text(CLEAR_PRODUCT_SALES))
            .bind(since)
            .execute(&mut *tx)
            .await?;
        for ((hour, kind), count) in &events {
            sqlx::query(text(EVENT_COUNT_INSERT))
                .bind(*hour)
                .bind(kind)
                .bind(*count)
                .execute(&mut *tx)
                .await?;
        }
        for ((hour, product), (orders, units)) in &sales {
            sqlx::query(text(PRODUCT_SALE_INSERT))
                .bind(*hour)
                .bind(*product)
                .bind(*orders)
                .bind(*units)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    });
    Ok(RollupSummary {
        event_rows: events.len(),
        sales_rows: sales.len(),
    })
}

type ShardEvents = Vec<(DateTime<Utc>, String, i64)>;
type ShardSales = Vec<(DateTime<Utc>, Uuid, i64, i64)>;

/// One shard's hourly aggregates since `since` (the database groups; only sums travel).
async fn gather(pool: &SqlPool, since: DateTime<Utc>) -> Result<(ShardEvents, ShardSales), StoreError> {
    match pool {
        SqlPool::Postgres(pool) => {
            let events = sqlx::query_as(for_postgres(SHARD_EVENT_HOURS))
                .bind(since)
                .fetch_all(pool)
                .await?;
            let sales = sqlx::query_as(for_postgres(SHARD_SALE_HOURS))
                .bind(since)
                .fetch_all(pool)
                .await?;
            Ok((events, sales))
        }
        SqlPool::Sqlite(pool) => {
            let events: Vec<(String, String, i64)> = sqlx::query_as(for_sqlite(SHARD_EVENT_HOURS))
                .bind(since)
                .fetch_all(pool)
                .await?;
            let sales: Vec<(String, Uuid, i64, i64)> = sqlx::query_as(for_sqlite(SHARD_SALE_HOURS))
                .bind(since)
                .fetch_all(pool)
                .await?;
            let hour = |prefix: &str| {
                DateTime::parse_from_rfc3339(&format!("{prefix}:00:00Z"))
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|_| StoreError::Corrupt(format!("timestamp {prefix}")))
            };
            Ok((
                events
                    .into_iter()
                    .map(|(prefix, kind, count)| Ok((hour(&prefix.replace(' ', "T"))?, kind, count)))
                    .collect::<Result<_, StoreError>>()?,
                sales
                    .into_iter()
                    .map(|(prefix, product, orders, units)| {
                        Ok((hour(&prefix.replace(' ', "T"))?, product, orders, units))
                    })
                    .collect::<Result<_, StoreError>>()?,
            ))
        }
    }
}

/// Hourly event counts since `since`, oldest first.
pub async fn event_counts(primary: &SqlPool, since: DateTime<Utc>) -> Result<Vec<EventCount>, StoreError> {
    Ok(with_pool!(primary, |pool, text| {
        sqlx::query_as(text(EVENT_COUNTS))
            .bind(since)
            .fetch_all(pool)
            .await?
    }))
}

/// The `limit` best-selling products since `since`, by units.
pub async fn top_products(
    primary: &SqlPool,
    since: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<ProductSales>, StoreError> {
    Ok(with_pool!(primary, |pool, text| {
        sqlx::query_as(text(TOP_PRODUCTS))
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
    }))
}
