//! Idempotency keys, on the user's shard beside their orders: a key is claimed before the
//! order is placed, completed with the stored response in the order's own transaction, and
//! replayed to a retry.

use chrono::{DateTime, Utc};
use outgrow_domain::UserId;
use sqlx::types::Json;
use uuid::Uuid;

use super::Orders;
use crate::{
    db::sql::with_pool,
    repo::StoreError,
    store::{execute, statements},
};

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

/// An idempotency key presented with a request.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// The client's key (1–255 visible ASCII characters).
    pub key: String,
    /// SHA-256 of the request body: the same key with another body is refused.
    pub request_hash: Vec<u8>,
}

statements! {
    /// Claims an Idempotency-Key (the primary key `(user_id, key)` arbitrates).
    KEY_CLAIM("orders.key_claim") =
        "INSERT INTO idempotency_keys \
         (user_id, key, bucket, request_hash, order_id, locked_until, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, key) DO NOTHING";
    /// A claimed key: the request hash, and the response once completed.
    KEY_READ("orders.key_read") =
        "SELECT request_hash, status_code, response, locked_until FROM idempotency_keys WHERE user_id = $1 \
         AND key = $2";
    /// Takes over a claim whose request died (a compare-and-set on its lease).
    KEY_TAKE_OVER("orders.key_take_over") =
        "UPDATE idempotency_keys SET order_id = $3, locked_until = $4 WHERE user_id = $1 AND key = $2 \
         AND status_code IS NULL AND locked_until = $5";
    /// Gives a claim up after a failed request (never a completed key).
    KEY_RELEASE("orders.key_release") =
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND order_id = $3 \
         AND status_code IS NULL";
    /// Deletes keys past their time to live.
    KEYS_DELETE_BEFORE("orders.keys_delete_before") = "DELETE FROM idempotency_keys WHERE created_at < $1";
}

impl Orders {
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
        type Stored = (
            Vec<u8>,
            Option<i32>,
            Option<Json<serde_json::Value>>,
            DateTime<Utc>,
        );
        loop {
            let order_id = Uuid::now_v7();
            let now = Utc::now();
            let inserted = execute!(
                &route.shard.pool,
                KEY_CLAIM,
                user.0,
                &key.key,
                i32::from(route.bucket),
                &key.request_hash,
                order_id,
                now + lease,
                now,
            ) == 1;
            let claimed = inserted || {
                let stored: Option<Stored> = with_pool!(&route.shard.pool, |pool, text| {
                    sqlx::query_as(text(KEY_READ))
                        .bind(user.0)
                        .bind(&key.key)
                        .fetch_optional(pool)
                        .await?
                });
                match stored {
                    Some((hash, ..)) if hash != key.request_hash => return Err(ClaimError::Reused),
                    Some((_, Some(status), Some(Json(body)), _)) => {
                        return Ok(Claim::Replay {
                            status: u16::try_from(status).unwrap_or(500),
                            body,
                        });
                    }
                    // The first request died holding the key: take it over with a new order
                    // id (the dead request's reservation, if any, is released by its
                    // reconciler).
                    Some((.., locked_until)) if locked_until < now => {
                        let taken = execute!(
                            &route.shard.pool,
                            KEY_TAKE_OVER,
                            user.0,
                            &key.key,
                            order_id,
                            now + lease,
                            locked_until,
                        );
                        taken == 1
                    }
                    // Still running (or gone since the insert): wait and try again.
                    _ => false,
                }
            };
            if claimed {
                return Ok(Claim::Fresh { order_id });
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
        let outcome: Result<_, sqlx::Error> = async {
            execute!(&route.shard.pool, KEY_RELEASE, user.0, key, order_id);
            Ok(())
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!(%error, "could not release an idempotency key; it lapses with its lease");
        }
    }

    /// Deletes idempotency keys older than `before` on every shard; returns how many.
    pub async fn delete_keys_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for shard in self.shards.all() {
            deleted += execute!(&shard.pool, KEYS_DELETE_BEFORE, before);
        }
        Ok(deleted)
    }
}
