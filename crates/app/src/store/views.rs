//! Product view counts, written behind: the guide's write-behind cache for a high-frequency,
//! loss-tolerant write.
//!
//! A catalog read must not become a database write (a product page is read thousands of times
//! a second and served from the cache). Each instance adds views to an in-memory tally
//! instead — one map entry per product, so memory follows the catalog, not the traffic — and a
//! background task adds the tally to `product_views` in one statement every
//! `view_count_flush_interval`.
//!
//! The loss bound, stated and tested: a graceful stop (SIGTERM) flushes the tally before the
//! pools close, so nothing is lost; a crash (`kill -9`) loses the views counted since the last
//! flush — at most `view_count_flush_interval` of them, per instance. A flush that fails (the
//! database is down) puts its counts back and is retried at the next tick.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use chrono::Utc;
use outgrow_platform::shutdown::ShutdownSignal;
use uuid::Uuid;

use super::statements;
use crate::{
    db::sql::{SqlPool, for_postgres, for_sqlite, with_pool},
    repo::StoreError,
};

statements! {
    /// Adds counted views: a batch in one statement on PostgreSQL (arrays of products and
    /// counts); SQLite has no `UNNEST`, so it adds one product per statement, in one transaction.
    VIEWS_ADD("views.add") =
        "INSERT INTO product_views (product_id, views, updated_at) SELECT p, v, $3 \
         FROM UNNEST($1::uuid[], $2::int8[]) AS c(p, v) ON CONFLICT (product_id) DO UPDATE \
         SET views = product_views.views + excluded.views, updated_at = excluded.updated_at",
        sqlite = "INSERT INTO product_views (product_id, views, updated_at) VALUES ($1, $2, $3) \
                  ON CONFLICT (product_id) DO UPDATE \
                  SET views = product_views.views + excluded.views, updated_at = excluded.updated_at";
    /// The most viewed products, with their current names.
    MOST_VIEWED("views.most_viewed") =
        "SELECT v.product_id, p.name, v.views FROM product_views v LEFT \
         JOIN products p ON p.id = v.product_id ORDER BY v.views DESC, v.product_id LIMIT $1";
}

/// Views counted in this instance and not yet written.
#[derive(Debug)]
pub struct ViewCounter {
    pool: SqlPool,
    tally: Mutex<HashMap<Uuid, u64>>,
}

/// A product's views, for the admin report.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProductViews {
    pub product_id: Uuid,
    /// The product's current name (none once deleted).
    pub name: Option<String>,
    pub views: i64,
}

impl ViewCounter {
    /// A counter writing to the primary `pool`.
    pub fn new(pool: SqlPool) -> Self {
        Self {
            pool,
            tally: Mutex::new(HashMap::new()),
        }
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, u64>> {
        self.tally.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one view of `product` (in memory; written at the next flush).
    pub fn record(&self, product: Uuid) {
        *self.tally().entry(product).or_insert(0) += 1;
    }

    /// Writes the tally in one statement (SQLite: one transaction); returns the views written.
    /// On failure the counts go back into the tally for the next attempt.
    pub async fn flush(&self) -> Result<u64, StoreError> {
        let counts: Vec<(Uuid, u64)> = std::mem::take(&mut *self.tally()).into_iter().collect();
        if counts.is_empty() {
            return Ok(0);
        }
        let views: u64 = counts.iter().map(|(_, count)| count).sum();
        let started = std::time::Instant::now();
        match self.write(&counts).await {
            Ok(()) => {
                metrics::counter!("product_views_flushed_total").increment(views);
                metrics::histogram!("product_views_flush_seconds").record(started.elapsed().as_secs_f64());
                Ok(views)
            }
            Err(error) => {
                let mut tally = self.tally();
                for (product, count) in counts {
                    *tally.entry(product).or_insert(0) += count;
                }
                metrics::counter!("product_views_flush_failures_total").increment(1);
                Err(error.into())
            }
        }
    }

    async fn write(&self, counts: &[(Uuid, u64)]) -> Result<(), sqlx::Error> {
        let now = Utc::now();
        match &self.pool {
            SqlPool::Postgres(pool) => {
                let (products, views): (Vec<Uuid>, Vec<i64>) = counts
                    .iter()
                    .map(|(product, count)| (*product, i64::try_from(*count).unwrap_or(i64::MAX)))
                    .unzip();
                sqlx::query(for_postgres(VIEWS_ADD))
                    .bind(products)
                    .bind(views)
                    .bind(now)
                    .execute(pool)
                    .await?;
            }
            SqlPool::Sqlite(pool) => {
                // One writer: a transaction makes the batch one commit.
                let mut tx = pool.begin().await?;
                for (product, count) in counts {
                    sqlx::query(for_sqlite(VIEWS_ADD))
                        .bind(*product)
                        .bind(i64::try_from(*count).unwrap_or(i64::MAX))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Flushes every `interval` until `stop`; the final flush is [`App::close`]'s
    /// (crate::state::App::close), after the server has stopped taking requests.
    pub async fn run_flusher(self: std::sync::Arc<Self>, interval: Duration, stop: ShutdownSignal) {
        stop.every(interval, || async {
            if let Err(error) = self.flush().await {
                tracing::warn!(%error, "writing product view counts failed; kept for the next flush");
            }
        })
        .await;
    }
}

/// The `limit` most viewed products.
pub async fn most_viewed(primary: &SqlPool, limit: u32) -> Result<Vec<ProductViews>, StoreError> {
    Ok(with_pool!(primary, |pool, text| {
        sqlx::query_as(text(MOST_VIEWED))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
    }))
}
