//! Reading orders: one order, a user's page of them, their lines, and a reservation's owner.

use outgrow_domain::UserId;
use uuid::Uuid;

use super::{Order, OrderItemRow, OrderRow, Orders};
use crate::{
    db::{shards::Route, sql::with_pool},
    repo::StoreError,
    store::statements,
};

/// The columns of an [`OrderRow`] (macros, so that the statements below are literals).
macro_rules! order_columns {
    () => {
        "id, user_id, status, total_minor, currency, created_at, cancelled_at"
    };
}
/// The columns of an [`OrderItemRow`].
macro_rules! item_columns {
    () => {
        "order_id, product_id, name, quantity, unit_price_minor"
    };
}

statements! {
    /// An order of a user (never a tombstone).
    ORDER_GET("orders.get") =
        concat!(
            "SELECT ", order_columns!(),
            " FROM orders WHERE id = $1 AND user_id = $2 AND status <> 'void'"
        );
    /// A page of a user's orders, newest first, before a keyset cursor.
    ORDER_LIST("orders.list") =
        concat!(
            "SELECT ", order_columns!(),
            " FROM orders WHERE user_id = $1 AND status <> 'void' AND id < $2 ORDER BY id DESC LIMIT $3"
        );
}

/// The lines of `orders` orders: `order_id IN ($1, …, $n)`, one placeholder per order of a
/// page (whose size varies); `scripts/explain-queries` explains the statement of every page
/// size up to a full page (`orders.items.<n>`).
pub fn items_statement(orders: usize) -> String {
    let placeholders: Vec<String> = (1..=orders).map(|n| format!("${n}")).collect();
    format!(
        concat!(
            "SELECT ",
            item_columns!(),
            " FROM order_items WHERE order_id IN ({}) ORDER BY order_id, product_id"
        ),
        placeholders.join(", ")
    )
}

impl Orders {
    /// The product ids of reservation `order_id` (to invalidate their cached stock).
    pub async fn products_of(&self, order_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        Ok(self
            .intent(order_id)
            .await?
            .map(|intent| intent.items.iter().map(|line| line.product_id).collect())
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
        let order: Option<OrderRow> = with_pool!(&route.shard.read_pool, |pool, text| {
            sqlx::query_as(text(ORDER_GET))
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
        Ok(self.intent(order_id).await?.map(|intent| intent.user_id))
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
        let before = before.unwrap_or(Uuid::max());
        let orders: Vec<OrderRow> = with_pool!(&route.shard.read_pool, |pool, text| {
            sqlx::query_as(text(ORDER_LIST))
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
        let sql = items_statement(orders.len());
        Ok(with_pool!(&route.shard.read_pool, |pool, text| {
            let mut query = sqlx::query_as::<_, OrderItemRow>(text(&sql));
            for id in orders {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await?
        }))
    }
}
