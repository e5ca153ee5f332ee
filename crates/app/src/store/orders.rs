//! Orders: stock reserved on the primary, the order written on the user's shard, with
//! idempotency keys beside it. The protocol across that boundary, and its failure cases, are
//! in docs/sharding.md; in short:
//!
//! 1. **Reserve** (primary, one transaction): decrement each product's stock with a guarded
//!    `UPDATE … WHERE stock >= qty`, record an `order_intents` row `reserved`, and enqueue a
//!    delayed `orders.reconcile` job — so a reservation can never be forgotten.
//! 2. **Write** (shard, one transaction): the order, its items, and the idempotency key's
//!    stored response. This commit is the point of no return: the order exists.
//! 3. **Confirm** (primary, one transaction): intent `reserved` → `confirmed` and the
//!    confirmation e-mail job, together.
//!
//! A crash or a failure between the steps is finished by [`Orders::reconcile`]: it inserts a
//! `void` tombstone with the order's id on the shard. If that insert succeeds the order never
//! happened (and now never can: the primary key refuses a late write), so the stock is given
//! back; if the id is taken by a real order, the reservation is confirmed. Stock is never
//! oversold (step 1 is atomic per product) and no acknowledged order is lost (a 201 is only
//! sent after step 2 commits).

use chrono::{DateTime, Utc};
use outgrow_domain::{Currency, Money, UserId};
use outgrow_platform::jobs::Job;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    db::{
        shards::{Route, Shards},
        sql::{EnqueueJob, SqlPool, is_unique_violation, with_pool},
    },
    repo::StoreError,
};

/// One line of a new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub quantity: u32,
}

/// An order as stored on its shard.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: String,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// One line of a stored order, with the name and price it was sold at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct OrderItemRow {
    pub order_id: Uuid,
    pub product_id: Uuid,
    pub name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// An order and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order: OrderRow,
    pub items: Vec<OrderItemRow>,
}

/// Why an order was not placed.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("there is no product {0}")]
    UnknownProduct(Uuid),
    #[error("product {product_id} has {available} in stock, {requested} requested")]
    OutOfStock {
        product_id: Uuid,
        requested: u32,
        available: i64,
    },
    #[error("{0}")]
    Amount(String),
    #[error("the user's orders are being moved to another shard; retry shortly")]
    Moving,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PlaceError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// The outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This request owns the key: create the order with this id.
    Fresh { order_id: Uuid },
    /// A request with this key already succeeded: answer what it answered.
    Replay { status: u16, body: serde_json::Value },
}

/// Why an idempotency key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("this Idempotency-Key was used with a different request")]
    Reused,
    #[error("a request with this Idempotency-Key is still being processed")]
    InProgress,
    #[error("the user's orders are being moved to another shard; retry shortly")]
    Moving,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ClaimError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// An idempotency key presented with a request.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// The client's key (1–255 visible ASCII characters).
    pub key: String,
    /// SHA-256 of the request body: the same key with another body is refused.
    pub request_hash: Vec<u8>,
}

/// What [`Orders::reconcile`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// Nothing to do: no such reservation, or already settled.
    Settled,
    /// The order exists: the reservation is confirmed (and the e-mail queued).
    Confirmed,
    /// The order never happened: the stock is back.
    Released,
}

/// Why an order could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such order")]
    NotFound,
    #[error("the order is already cancelled")]
    AlreadyCancelled,
    #[error("the user's orders are being moved to another shard; retry shortly")]
    Moving,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CancelError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Sends the confirmation of an order (queue `mail`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendOrderConfirmation {
    pub order_id: Uuid,
    pub user_id: Uuid,
}

impl Job for SendOrderConfirmation {
    const NAME: &'static str = "orders.confirmation_email";
    const QUEUE: &'static str = "mail";
    const MAX_ATTEMPTS: i32 = 8;
}

/// Settles a reservation whose request did not (confirmed or released).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReconcileOrder {
    pub order_id: Uuid,
}

impl Job for ReconcileOrder {
    const NAME: &'static str = "orders.reconcile";
    const MAX_ATTEMPTS: i32 = 20;
}

/// Marks a cancelled order `cancelled` on its shard (after the primary gave the stock back).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FinishCancellation {
    pub order_id: Uuid,
    pub user_id: Uuid,
}

impl Job for FinishCancellation {
    const NAME: &'static str = "orders.finish_cancellation";
    const MAX_ATTEMPTS: i32 = 20;
}

const ORDER_COLUMNS: &str = "id, user_id, status, total_minor, currency, created_at, cancelled_at";
const ITEM_COLUMNS: &str = "order_id, product_id, name, quantity, unit_price_minor";

/// The orders on every shard, and the stock on the primary.
#[derive(Debug, Clone)]
pub struct Orders {
    primary: SqlPool,
    shards: Shards,
    reconcile_after: std::time::Duration,
}

/// A reserved line: what was sold, at what price.
#[derive(Debug, Clone)]
struct Reserved {
    line: OrderLine,
    name: String,
    price: Money,
}

impl Orders {
    /// Orders over `shards`, stock on `primary`.
    pub fn new(primary: SqlPool, shards: Shards, reconcile_after: std::time::Duration) -> Self {
        Self {
            primary,
            shards,
            reconcile_after,
        }
    }

    /// The shards (routing, moves).
    pub fn shards(&self) -> &Shards {
        &self.shards
    }

    /// Claims `key` for `user` on their shard, waiting (bounded by `wait`) while another request
    /// with the same key runs. A claim whose request died lapses after `lease`.
    pub async fn claim_key(
        &self,
        user: UserId,
        key: &IdempotencyKey,
        lease: std::time::Duration,
        wait: std::time::Duration,
    ) -> Result<Claim, ClaimError> {
        let route = self.shards.route(user);
        if route.moving {
            return Err(ClaimError::Moving);
        }
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        let deadline = tokio::time::Instant::now() + wait;
        let insert = "INSERT INTO idempotency_keys (user_id, key, bucket, request_hash, order_id, locked_until, created_at)
                      VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, key) DO NOTHING";
        let select = "SELECT request_hash, status_code, response, locked_until FROM idempotency_keys
                      WHERE user_id = $1 AND key = $2";
        let take_over = "UPDATE idempotency_keys SET order_id = $3, locked_until = $4
                         WHERE user_id = $1 AND key = $2 AND status_code IS NULL AND locked_until = $5";
        type Stored = (
            Vec<u8>,
            Option<i32>,
            Option<Json<serde_json::Value>>,
            DateTime<Utc>,
        );
        loop {
            let order_id = Uuid::now_v7();
            let now = Utc::now();
            let inserted = with_pool!(&route.shard.pool, |pool, text| {
                sqlx::query(text(insert))
                    .bind(user.0)
                    .bind(&key.key)
                    .bind(i32::from(route.bucket))
                    .bind(&key.request_hash)
                    .bind(order_id)
                    .bind(now + lease)
                    .bind(now)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            if inserted == 1 {
                return Ok(Claim::Fresh { order_id });
            }
            let stored: Option<Stored> = with_pool!(&route.shard.pool, |pool, text| {
                sqlx::query_as(text(select))
                    .bind(user.0)
                    .bind(&key.key)
                    .fetch_optional(pool)
                    .await?
            });
            if let Some((hash, status, response, locked_until)) = stored {
                if hash != key.request_hash {
                    return Err(ClaimError::Reused);
                }
                if let (Some(status), Some(Json(body))) = (status, response) {
                    return Ok(Claim::Replay {
                        status: u16::try_from(status).unwrap_or(500),
                        body,
                    });
                }
                if locked_until < now {
                    // The first request died holding the key: take it over with a new order
                    // id (the dead request's reservation, if any, is released by its
                    // reconciler).
                    let taken = with_pool!(&route.shard.pool, |pool, text| {
                        sqlx::query(text(take_over))
                            .bind(user.0)
                            .bind(&key.key)
                            .bind(order_id)
                            .bind(now + lease)
                            .bind(locked_until)
                            .execute(pool)
                            .await?
                            .rows_affected()
                    });
                    if taken == 1 {
                        return Ok(Claim::Fresh { order_id });
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClaimError::InProgress);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Gives a claimed key up after a failed request, so a retry starts afresh.
    pub async fn release_key(&self, user: UserId, key: &str, order_id: Uuid) {
        let route = self.shards.route(user);
        let sql = "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND order_id = $3 AND status_code IS NULL";
        let outcome: Result<_, sqlx::Error> = async {
            with_pool!(&route.shard.pool, |pool, text| {
                sqlx::query(text(sql))
                    .bind(user.0)
                    .bind(key)
                    .bind(order_id)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            Ok(())
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!(%error, "could not release an idempotency key; it lapses with its lease");
        }
    }

    /// Places order `order_id` for `user`. `respond` renders the response body stored with
    /// the idempotency key (when there is one); returns the order as stored. The product ids
    /// of `lines` must be distinct.
    pub async fn place(
        &self,
        user: UserId,
        order_id: Uuid,
        lines: &[OrderLine],
        key: Option<&str>,
        respond: impl FnOnce(&Order) -> serde_json::Value,
    ) -> Result<Order, PlaceError> {
        let route = self.shards.route(user);
        if route.moving {
            return Err(PlaceError::Moving);
        }
        let reserved = self.reserve(user, order_id, lines).await?;
        let now = Utc::now();
        let mut total: Option<Money> = None;
        for line in &reserved {
            let amount = line
                .price
                .times(line.line.quantity)
                .and_then(|amount| total.map_or(Ok(amount), |total| total.plus(amount)));
            match amount {
                Ok(amount) => total = Some(amount),
                Err(problem) => {
                    self.settle_after_failure(order_id).await;
                    return Err(PlaceError::Amount(problem.0));
                }
            }
        }
        let Some(total) = total else {
            return Err(PlaceError::Amount("an order needs at least one item".into()));
        };
        let order = Order {
            order: OrderRow {
                id: order_id,
                user_id: user.0,
                status: "placed".into(),
                total_minor: total.minor,
                currency: total.currency.to_string(),
                created_at: now,
                cancelled_at: None,
            },
            items: reserved
                .iter()
                .map(|line| OrderItemRow {
                    order_id,
                    product_id: line.line.product_id,
                    name: line.name.clone(),
                    quantity: i32::try_from(line.line.quantity).unwrap_or(i32::MAX),
                    unit_price_minor: line.price.minor,
                })
                .collect(),
        };
        let body = key.map(|_| respond(&order));
        if let Err(error) = self.write(&route, &order, key, body).await {
            tracing::warn!(%order_id, %error, "writing the order failed; settling its reservation");
            self.settle_after_failure(order_id).await;
            return Err(error.into());
        }
        if let Err(error) = self.confirm(order_id, user).await {
            // The order exists; its reconciler confirms it (and sends the e-mail) later.
            tracing::warn!(%order_id, %error, "confirming the reservation failed; the reconciler will");
        }
        Ok(order)
    }

    /// Step 1: the stock, the intent and the safety-net job, in one primary transaction.
    async fn reserve(
        &self,
        user: UserId,
        order_id: Uuid,
        lines: &[OrderLine],
    ) -> Result<Vec<Reserved>, PlaceError> {
        // Always lock products in the same order: two orders for the same products then
        // queue behind each other instead of deadlocking.
        let mut lines = lines.to_vec();
        lines.sort_by_key(|line| line.product_id);
        let decrement = "UPDATE products SET stock = stock - $2, updated_at = $3
                         WHERE id = $1 AND stock >= $2 RETURNING name, price_minor, currency";
        let stock = "SELECT stock FROM products WHERE id = $1";
        let intent = "INSERT INTO order_intents (order_id, user_id, items, state, created_at, updated_at)
                      VALUES ($1, $2, $3, 'reserved', $4, $4)";
        let now = Utc::now();
        let mut job = ReconcileOrder { order_id }
            .to_new_job()
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        job.run_at = Some(
            now + chrono::Duration::from_std(self.reconcile_after).unwrap_or(chrono::Duration::minutes(2)),
        );
        with_pool!(&self.primary, |pool, text| {
            let mut tx = pool.begin().await?;
            let mut reserved = Vec::with_capacity(lines.len());
            for line in &lines {
                let row: Option<(String, i64, String)> = sqlx::query_as(text(decrement))
                    .bind(line.product_id)
                    .bind(i64::from(line.quantity))
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((name, price_minor, currency)) = row else {
                    let available: Option<i64> = sqlx::query_scalar(text(stock))
                        .bind(line.product_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    // Dropping the transaction rolls back the lines reserved so far.
                    return Err(match available {
                        None => PlaceError::UnknownProduct(line.product_id),
                        Some(available) => PlaceError::OutOfStock {
                            product_id: line.product_id,
                            requested: line.quantity,
                            available,
                        },
                    });
                };
                let currency = Currency::parse(&currency)
                    .map_err(|_| StoreError::Corrupt(format!("currency {currency}")))?;
                let price =
                    Money::new(price_minor, currency).map_err(|error| StoreError::Corrupt(error.0))?;
                reserved.push(Reserved {
                    line: *line,
                    name,
                    price,
                });
            }
            sqlx::query(text(intent))
                .bind(order_id)
                .bind(user.0)
                .bind(Json(&lines))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.enqueue(&job).await?;
            tx.commit().await?;
            Ok(reserved)
        })
    }

    /// Step 2: the order, its lines and the idempotency key's response, on the shard.
    async fn write(
        &self,
        route: &Route<'_>,
        order: &Order,
        key: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        let insert = "INSERT INTO orders (id, user_id, bucket, status, total_minor, currency, created_at)
                      VALUES ($1, $2, $3, 'placed', $4, $5, $6)";
        let item = "INSERT INTO order_items (order_id, product_id, name, quantity, unit_price_minor)
                    VALUES ($1, $2, $3, $4, $5)";
        let complete = "UPDATE idempotency_keys SET status_code = 201, response = $3
                        WHERE user_id = $1 AND key = $2 AND order_id = $4 AND status_code IS NULL";
        let row = &order.order;
        with_pool!(&route.shard.pool, |pool, text| {
            let mut tx = pool.begin().await?;
            sqlx::query(text(insert))
                .bind(row.id)
                .bind(row.user_id)
                .bind(i32::from(route.bucket))
                .bind(row.total_minor)
                .bind(&row.currency)
                .bind(row.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|error| {
                    if is_unique_violation(&error) {
                        StoreError::Unavailable("the order timed out before it was written".into())
                    } else {
                        error.into()
                    }
                })?;
            for line in &order.items {
                sqlx::query(text(item))
                    .bind(line.order_id)
                    .bind(line.product_id)
                    .bind(&line.name)
                    .bind(line.quantity)
                    .bind(line.unit_price_minor)
                    .execute(&mut *tx)
                    .await?;
            }
            if let (Some(key), Some(body)) = (key, body) {
                let completed = sqlx::query(text(complete))
                    .bind(row.user_id)
                    .bind(key)
                    .bind(Json(body))
                    .bind(row.id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if completed != 1 {
                    return Err(StoreError::Unavailable(
                        "the Idempotency-Key's claim lapsed while the order was being placed".into(),
                    ));
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Step 3: `reserved` → `confirmed`, with the confirmation e-mail, in one primary
    /// transaction. Returns whether this call confirmed it.
    async fn confirm(&self, order_id: Uuid, user: UserId) -> Result<bool, StoreError> {
        let sql = "UPDATE order_intents SET state = 'confirmed', updated_at = $2 WHERE order_id = $1 AND state = 'reserved'";
        let job = SendOrderConfirmation {
            order_id,
            user_id: user.0,
        }
        .to_new_job()
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        Ok(with_pool!(&self.primary, |pool, text| {
            let mut tx = pool.begin().await?;
            let confirmed = sqlx::query(text(sql))
                .bind(order_id)
                .bind(Utc::now())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if confirmed {
                tx.enqueue(&job).await?;
            }
            tx.commit().await?;
            confirmed
        }))
    }

    /// After a failed step 2: settle at once if possible, else the delayed job will.
    async fn settle_after_failure(&self, order_id: Uuid) {
        if let Err(error) = self.reconcile(order_id).await {
            tracing::warn!(%order_id, %error, "could not settle the reservation now; its reconciler will");
        }
    }

    /// Decides the fate of reservation `order_id` (see the module docs). Idempotent.
    pub async fn reconcile(&self, order_id: Uuid) -> Result<Reconciled, StoreError> {
        let Some((user, _lines, state)) = self.intent(order_id).await? else {
            return Ok(Reconciled::Settled);
        };
        if state != "reserved" {
            return Ok(Reconciled::Settled);
        }
        let route = self.shards.route(user);
        if route.moving {
            return Err(StoreError::Unavailable("the user's bucket is being moved".into()));
        }
        let tombstone = "INSERT INTO orders (id, user_id, bucket, status, total_minor, currency, created_at)
                         VALUES ($1, $2, $3, 'void', 0, 'XXX', $4) ON CONFLICT (id) DO NOTHING";
        let status = "SELECT status FROM orders WHERE id = $1";
        let (inserted, current): (u64, Option<String>) = with_pool!(&route.shard.pool, |pool, text| {
            let inserted = sqlx::query(text(tombstone))
                .bind(order_id)
                .bind(user.0)
                .bind(i32::from(route.bucket))
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected();
            let current = sqlx::query_scalar(text(status))
                .bind(order_id)
                .fetch_optional(pool)
                .await?;
            (inserted, current)
        });
        if inserted == 1 || current.as_deref() == Some("void") {
            self.give_back(order_id, "reserved", "released").await?;
            Ok(Reconciled::Released)
        } else {
            self.confirm(order_id, user).await?;
            Ok(Reconciled::Confirmed)
        }
    }

    /// The intent of `order_id`: its user, lines and state.
    async fn intent(&self, order_id: Uuid) -> Result<Option<(UserId, Vec<OrderLine>, String)>, StoreError> {
        let sql = "SELECT user_id, items, state FROM order_intents WHERE order_id = $1";
        let row: Option<(Uuid, Json<Vec<OrderLine>>, String)> = with_pool!(&self.primary, |pool, text| {
            sqlx::query_as(text(sql))
                .bind(order_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(user, Json(lines), state)| (UserId(user), lines, state)))
    }

    /// Moves the intent from `from` to `to` and, if this call did, returns its stock (and for
    /// a cancellation, queues the shard-side update). Returns whether this call did.
    async fn give_back(&self, order_id: Uuid, from: &str, to: &str) -> Result<bool, StoreError> {
        self.transition(order_id, &[from], to, None).await
    }

    async fn transition(
        &self,
        order_id: Uuid,
        from: &[&str],
        to: &str,
        job: Option<outgrow_platform::jobs::NewJob>,
    ) -> Result<bool, StoreError> {
        let flip = format!(
            "UPDATE order_intents SET state = $2, updated_at = $3 WHERE order_id = $1 AND state IN ({}) RETURNING items",
            from.iter()
                .map(|state| format!("'{}'", state.replace('\'', "")))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let restock = "UPDATE products SET stock = stock + $2, updated_at = $3 WHERE id = $1";
        Ok(with_pool!(&self.primary, |pool, text| {
            let mut tx = pool.begin().await?;
            let now = Utc::now();
            let items: Option<Json<Vec<OrderLine>>> = sqlx::query_scalar(text(&flip))
                .bind(order_id)
                .bind(to)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(Json(lines)) = items else {
                return Ok(false);
            };
            for line in &lines {
                // A product deleted since has no stock to return to.
                sqlx::query(text(restock))
                    .bind(line.product_id)
                    .bind(i64::from(line.quantity))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(job) = &job {
                tx.enqueue(job).await?;
            }
            tx.commit().await?;
            true
        }))
    }

    /// The product ids of reservation `order_id` (to invalidate their cached stock).
    pub async fn products_of(&self, order_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        Ok(self
            .intent(order_id)
            .await?
            .map(|(_, lines, _)| lines.iter().map(|line| line.product_id).collect())
            .unwrap_or_default())
    }

    /// Order `order_id` of `user` (never a tombstone).
    pub async fn get(&self, user: UserId, order_id: Uuid) -> Result<Option<Order>, StoreError> {
        let route = self.shards.route(user);
        if !self.shards.is_loaded() {
            return Err(StoreError::Unavailable(
                "the shard map has not been read yet".into(),
            ));
        }
        let sql =
            format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND user_id = $2 AND status <> 'void'");
        let order: Option<OrderRow> = with_pool!(&route.shard.read_pool, |pool, text| {
            sqlx::query_as(text(&sql))
                .bind(order_id)
                .bind(user.0)
                .fetch_optional(pool)
                .await?
        });
        let Some(order) = order else { return Ok(None) };
        let items = self.items(&route, &[order.id]).await?;
        Ok(Some(Order { order, items }))
    }

    /// Whose order `order_id` is (for admins, who do not know the owner).
    pub async fn owner_of(&self, order_id: Uuid) -> Result<Option<UserId>, StoreError> {
        Ok(self.intent(order_id).await?.map(|(user, _, _)| user))
    }

    /// A page of `user`'s orders, newest first, before `before` (keyset).
    pub async fn list(
        &self,
        user: UserId,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let route = self.shards.route(user);
        if !self.shards.is_loaded() {
            return Err(StoreError::Unavailable(
                "the shard map has not been read yet".into(),
            ));
        }
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND status <> 'void' AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        let before = before.unwrap_or(Uuid::max());
        let orders: Vec<OrderRow> = with_pool!(&route.shard.read_pool, |pool, text| {
            sqlx::query_as(text(&sql))
                .bind(user.0)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        let ids: Vec<Uuid> = orders.iter().map(|order| order.id).collect();
        let mut items = self.items(&route, &ids).await?;
        Ok(orders
            .into_iter()
            .map(|order| {
                let (mine, rest): (Vec<_>, Vec<_>) =
                    items.drain(..).partition(|item| item.order_id == order.id);
                items = rest;
                Order { order, items: mine }
            })
            .collect())
    }

    async fn items(&self, route: &Route<'_>, orders: &[Uuid]) -> Result<Vec<OrderItemRow>, StoreError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=orders.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM order_items WHERE order_id IN ({}) ORDER BY order_id, product_id",
            placeholders.join(", ")
        );
        Ok(with_pool!(&route.shard.read_pool, |pool, text| {
            let mut query = sqlx::query_as::<_, OrderItemRow>(text(&sql));
            for id in orders {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await?
        }))
    }

    /// Cancels `user`'s order `order_id` once: the stock goes back on the primary (with a job
    /// that finishes the shard side if this request cannot), then the order is marked.
    pub async fn cancel(&self, user: UserId, order_id: Uuid) -> Result<Order, CancelError> {
        let route = self.shards.route(user);
        if route.moving {
            return Err(CancelError::Moving);
        }
        let Some(order) = self.get(user, order_id).await? else {
            return Err(CancelError::NotFound);
        };
        if order.order.status == "cancelled" {
            return Err(CancelError::AlreadyCancelled);
        }
        let job = FinishCancellation {
            order_id,
            user_id: user.0,
        }
        .to_new_job()
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        if !self
            .transition(order_id, &["reserved", "confirmed"], "cancelled", Some(job))
            .await?
        {
            return Err(CancelError::AlreadyCancelled);
        }
        let cancelled_at = self.finish_cancellation(user, order_id).await?;
        let mut order = order;
        order.order.status = "cancelled".into();
        order.order.cancelled_at = Some(cancelled_at);
        Ok(order)
    }

    /// Marks the order cancelled on its shard (idempotent); returns when it was cancelled.
    pub async fn finish_cancellation(
        &self,
        user: UserId,
        order_id: Uuid,
    ) -> Result<DateTime<Utc>, StoreError> {
        let route = self.shards.route(user);
        if route.moving {
            return Err(StoreError::Unavailable("the user's bucket is being moved".into()));
        }
        let update =
            "UPDATE orders SET status = 'cancelled', cancelled_at = $2 WHERE id = $1 AND status = 'placed'";
        let read = "SELECT cancelled_at FROM orders WHERE id = $1";
        let now = Utc::now();
        let at: Option<Option<DateTime<Utc>>> = with_pool!(&route.shard.pool, |pool, text| {
            sqlx::query(text(update))
                .bind(order_id)
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query_scalar(text(read))
                .bind(order_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(at.flatten().unwrap_or(now))
    }

    /// Deletes idempotency keys older than `before` on every shard; returns how many.
    pub async fn delete_keys_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let sql = "DELETE FROM idempotency_keys WHERE created_at < $1";
        let mut deleted = 0;
        for shard in self.shards.all() {
            deleted += with_pool!(&shard.pool, |pool, text| {
                sqlx::query(text(sql))
                    .bind(before)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
        }
        Ok(deleted)
    }
}
