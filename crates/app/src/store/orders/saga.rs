//! The order saga: reserve on the primary, write on the shard, confirm on the primary; the
//! reconciler that finishes what a crash interrupted; and cancellation (see the module above).

use chrono::{DateTime, Utc};
use outgrow_domain::{Currency, IntentState, Money, OrderStatus, UserId};
use outgrow_platform::jobs::Job;
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    CancelError, FinishCancellation, Order, OrderItemRow, OrderLine, OrderRow, Orders, PlaceError,
    ReconcileOrder, Reconciled, Reserved, SendOrderConfirmation,
};
use crate::{
    db::{
        shards::Route,
        sql::{EnqueueJob, Sql, is_unique_violation, with_pool},
    },
    repo::StoreError,
    store::statements,
};

statements! {
    /// Reserves stock: a guarded decrement (two orders for the last units cannot both get them).
    STOCK_RESERVE("orders.stock_reserve") =
        "UPDATE products SET stock = stock - $2, updated_at = $3 WHERE id = $1 AND stock >= $2 \
         RETURNING name, price_minor, currency";
    /// The stock of a product (after a refused reservation: unknown, or out of stock?).
    STOCK_READ("orders.stock_read") = "SELECT stock FROM products WHERE id = $1";
    /// Records a reservation.
    INTENT_INSERT("orders.intent_insert") =
        "INSERT INTO order_intents (order_id, user_id, items, state, created_at, updated_at) \
         VALUES ($1, $2, $3, 'reserved', $4, $4)";
    /// Writes an order (its primary key refuses it once the reconciler's tombstone took its id).
    ORDER_INSERT("orders.insert") =
        "INSERT INTO orders (id, user_id, bucket, status, total_minor, currency, created_at) \
         VALUES ($1, $2, $3, 'placed', $4, $5, $6)";
    /// Writes an order line.
    ITEM_INSERT("orders.item_insert") =
        "INSERT INTO order_items (order_id, product_id, name, quantity, unit_price_minor) \
         VALUES ($1, $2, $3, $4, $5)";
    /// Stores the response of an Idempotency-Key, if this request still holds the claim.
    KEY_COMPLETE("orders.key_complete") =
        "UPDATE idempotency_keys SET status_code = 201, response = $3 WHERE user_id = $1 AND key = $2 \
         AND order_id = $4 AND status_code IS NULL";
    /// Confirms a reservation.
    INTENT_CONFIRM("orders.intent_confirm") =
        "UPDATE order_intents SET state = 'confirmed', updated_at = $2 WHERE order_id = $1 \
         AND state = 'reserved'";
    /// The reconciler's tombstone: takes the id of an order that was never written.
    TOMBSTONE("orders.tombstone") =
        "INSERT INTO orders (id, user_id, bucket, status, total_minor, currency, created_at) \
         VALUES ($1, $2, $3, 'void', 0, 'XXX', $4) ON CONFLICT (id) DO NOTHING";
    /// An order's status (did the tombstone or the order win?).
    ORDER_STATUS("orders.status") = "SELECT status FROM orders WHERE id = $1";
    /// A reservation: its user, lines and state.
    INTENT_GET("orders.intent_get") = "SELECT user_id, items, state FROM order_intents WHERE order_id = $1";
    /// Releases a reservation (the order never happened); returns its lines.
    INTENT_RELEASE("orders.intent_release") =
        "UPDATE order_intents SET state = $2, updated_at = $3 WHERE order_id = $1 AND state IN ('reserved') \
         RETURNING items";
    /// Cancels a reservation, confirmed or not (once); returns its lines.
    INTENT_CANCEL("orders.intent_cancel") =
        "UPDATE order_intents SET state = $2, updated_at = $3 WHERE order_id = $1 \
         AND state IN ('reserved', 'confirmed') RETURNING items";
    /// Gives stock back (a product deleted since updates nothing).
    RESTOCK("orders.restock") = "UPDATE products SET stock = stock + $2, updated_at = $3 WHERE id = $1";
    /// Marks an order cancelled on its shard (once).
    ORDER_CANCEL("orders.cancel") =
        "UPDATE orders SET status = 'cancelled', cancelled_at = $2 WHERE id = $1 AND status = 'placed'";
    /// When an order was cancelled.
    ORDER_CANCELLED_AT("orders.cancelled_at") = "SELECT cancelled_at FROM orders WHERE id = $1";
}

/// A reservation as stored: its user, lines and state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct Intent {
    #[sqlx(try_from = "Uuid")]
    pub user_id: UserId,
    pub items: Json<Vec<OrderLine>>,
    #[sqlx(try_from = "String")]
    pub state: IntentState,
}

impl Orders {
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
                user_id: user,
                status: OrderStatus::Placed,
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
                let row: Option<(String, i64, String)> = sqlx::query_as(text(STOCK_RESERVE))
                    .bind(line.product_id)
                    .bind(i64::from(line.quantity))
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((name, price_minor, currency)) = row else {
                    let available: Option<i64> = sqlx::query_scalar(text(STOCK_READ))
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
            sqlx::query(text(INTENT_INSERT))
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
        let row = &order.order;
        with_pool!(&route.shard.pool, |pool, text| {
            let mut tx = pool.begin().await?;
            sqlx::query(text(ORDER_INSERT))
                .bind(row.id)
                .bind(row.user_id.0)
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
                sqlx::query(text(ITEM_INSERT))
                    .bind(line.order_id)
                    .bind(line.product_id)
                    .bind(&line.name)
                    .bind(line.quantity)
                    .bind(line.unit_price_minor)
                    .execute(&mut *tx)
                    .await?;
            }
            if let (Some(key), Some(body)) = (key, body) {
                let completed = sqlx::query(text(KEY_COMPLETE))
                    .bind(row.user_id.0)
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
        let job = SendOrderConfirmation {
            order_id,
            user_id: user,
        }
        .to_new_job()
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        Ok(with_pool!(&self.primary, |pool, text| {
            let mut tx = pool.begin().await?;
            let confirmed = sqlx::query(text(INTENT_CONFIRM))
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
        let Some(Intent {
            user_id: user, state, ..
        }) = self.intent(order_id).await?
        else {
            return Ok(Reconciled::Settled);
        };
        if state != IntentState::Reserved {
            return Ok(Reconciled::Settled);
        }
        let route = self.shards.route(user);
        if route.moving {
            return Err(StoreError::Unavailable("the user's bucket is being moved".into()));
        }
        let (inserted, current): (u64, Option<String>) = with_pool!(&route.shard.pool, |pool, text| {
            let inserted = sqlx::query(text(TOMBSTONE))
                .bind(order_id)
                .bind(user.0)
                .bind(i32::from(route.bucket))
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected();
            let current = sqlx::query_scalar(text(ORDER_STATUS))
                .bind(order_id)
                .fetch_optional(pool)
                .await?;
            (inserted, current)
        });
        if inserted == 1 || current.as_deref() == Some(OrderStatus::Void.as_str()) {
            self.transition(order_id, &INTENT_RELEASE, IntentState::Released, None)
                .await?;
            Ok(Reconciled::Released)
        } else {
            self.confirm(order_id, user).await?;
            Ok(Reconciled::Confirmed)
        }
    }

    /// The intent of `order_id`: its user, lines and state.
    pub(super) async fn intent(&self, order_id: Uuid) -> Result<Option<Intent>, StoreError> {
        Ok(with_pool!(&self.primary, |pool, text| {
            sqlx::query_as(text(INTENT_GET))
                .bind(order_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Moves the intent to `to` with `flip` ([`INTENT_RELEASE`] or [`INTENT_CANCEL`], which
    /// say from which states) and, if this call did, returns its stock (and for a
    /// cancellation, queues the shard-side update). Returns whether this call did.
    async fn transition(
        &self,
        order_id: Uuid,
        flip: &Sql,
        to: IntentState,
        job: Option<outgrow_platform::jobs::NewJob>,
    ) -> Result<bool, StoreError> {
        Ok(with_pool!(&self.primary, |pool, text| {
            let mut tx = pool.begin().await?;
            let now = Utc::now();
            let items: Option<Json<Vec<OrderLine>>> = sqlx::query_scalar(text(flip))
                .bind(order_id)
                .bind(to.as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(Json(lines)) = items else {
                return Ok(false);
            };
            for line in &lines {
                // A product deleted since has no stock to return to.
                sqlx::query(text(RESTOCK))
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
        if order.order.status == OrderStatus::Cancelled {
            return Err(CancelError::AlreadyCancelled);
        }
        let job = FinishCancellation {
            order_id,
            user_id: user,
        }
        .to_new_job()
        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        if !self
            .transition(order_id, &INTENT_CANCEL, IntentState::Cancelled, Some(job))
            .await?
        {
            return Err(CancelError::AlreadyCancelled);
        }
        let cancelled_at = self.finish_cancellation(user, order_id).await?;
        let mut order = order;
        order.order.status = OrderStatus::Cancelled;
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
        let now = Utc::now();
        let at: Option<Option<DateTime<Utc>>> = with_pool!(&route.shard.pool, |pool, text| {
            sqlx::query(text(ORDER_CANCEL))
                .bind(order_id)
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query_scalar(text(ORDER_CANCELLED_AT))
                .bind(order_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(at.flatten().unwrap_or(now))
    }
}
