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
//!
//! The code follows those seams: [`saga`] the three steps, the reconciler and cancellation;
//! [`idempotency`] the keys; [`queries`] the reads. Each owns its statements, as constants.

mod idempotency;
mod queries;
mod saga;

use chrono::{DateTime, Utc};
use outgrow_domain::{Money, OrderStatus, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::idempotency::{Claim, ClaimError, IdempotencyKey};
use crate::{
    db::{
        shards::Shards,
        sql::{Sql, SqlPool},
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
    #[sqlx(try_from = "Uuid")]
    pub user_id: UserId,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
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

/// `From<sqlx::Error>` for errors whose `Store` variant holds a [`StoreError`]: a failed
/// statement is a store failure, whichever operation ran it.
macro_rules! store_error_from_sqlx {
    ($($error:ty),+) => {
        $(impl From<sqlx::Error> for $error {
            fn from(error: sqlx::Error) -> Self {
                Self::Store(error.into())
            }
        })+
    };
}
store_error_from_sqlx!(PlaceError, CancelError, ClaimError);

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

outgrow_platform::jobs! {
    /// Sends the confirmation of an order (queue `mail`).
    SendOrderConfirmation("orders.confirmation_email", queue = "mail", attempts = 8) {
        order_id: Uuid,
        user_id: UserId,
    }
    /// Settles a reservation whose request did not (confirmed or released).
    ReconcileOrder("orders.reconcile", attempts = 20) {
        order_id: Uuid,
    }
    /// Marks a cancelled order `cancelled` on its shard (after the primary gave the stock back).
    FinishCancellation("orders.finish_cancellation", attempts = 20) {
        order_id: Uuid,
        user_id: UserId,
    }
}

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
}

/// Every named statement of the orders, for `scripts/explain-queries`.
pub const STATEMENTS: &[&[Sql]] = &[idempotency::STATEMENTS, saga::STATEMENTS, queries::STATEMENTS];

pub use self::queries::items_statement;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_job_payloads_keep_their_stored_json() {
        let order_id = Uuid::from_u128(1);
        let user_id = UserId(Uuid::from_u128(2));
        let stored = serde_json::json!({
            "order_id": "00000000-0000-0000-0000-000000000001",
            "user_id": "00000000-0000-0000-0000-000000000002",
        });
        let confirmation = SendOrderConfirmation { order_id, user_id };
        let cancellation = FinishCancellation { order_id, user_id };
        assert_eq!(serde_json::to_value(&confirmation).expect("serialises"), stored);
        assert_eq!(serde_json::to_value(&cancellation).expect("serialises"), stored);
        assert_eq!(
            serde_json::from_value::<FinishCancellation>(stored).expect("an old payload parses"),
            cancellation
        );
    }
}
