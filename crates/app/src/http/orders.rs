//! `/api/v1/orders`: placing orders (idempotent with `Idempotency-Key`), reading and
//! cancelling them. Orders live on the shard of their user; see [`crate::store::orders`].

use std::collections::HashSet;

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::Response,
};
use chrono::{DateTime, Utc};
use outgrow_domain::{OrderStatus, Role, UserId};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use super::{
    authn::Principal,
    error::{ApiError, FieldError},
    extract::{ApiJson, ApiQuery, integer, path_uuid},
    paging::{cut_page, page_response, page_size},
    reply::located,
    responses::{
        AlreadyCancelled, Invalid, NoSuchOrder, NotFound, OrderConflict, OrderRateLimited,
        OrderUnprocessable, RetryAfter,
    },
};
use crate::{
    caches::forget_products,
    state::AppState,
    store::orders::{CancelError, Claim, ClaimError, IdempotencyKey, Order, OrderLine, PlaceError},
};

/// Order routes (under `/api/v1/orders`).
pub fn router() -> OpenApiRouter<AppState> {
    feature_router![list_orders, create_order; get_order; cancel_order]
}

const MAX_LINES: usize = 50;
const MAX_QUANTITY: u32 = 1_000;
const MAX_KEY_CHARS: usize = 255;
/// The answer while the caller's bucket moves between shards (503 + `Retry-After`).
const MOVING: &str = "your orders are being moved between databases; retry in a moment";
/// The header marking a replayed answer.
const REPLAYED: &str = "idempotent-replayed";

/// One line of a new order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    pub product_id: Uuid,
    /// 1 to 1,000.
    #[serde(deserialize_with = "integer::exact")]
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: u32,
}

/// A new order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// 1 to 50 lines, each product once.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<OrderLineRequest>,
}

/// One line of an order, at the price it was sold.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderItemResponse {
    pub product_id: Uuid,
    /// The product's name when it was sold.
    pub name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// An order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrderResponse {
    pub id: Uuid,
    pub user_id: Uuid,
    /// `placed` or `cancelled`.
    pub status: OrderStatus,
    /// Computed by the server, in minor units of `currency`.
    pub total_minor: i64,
    pub currency: String,
    pub items: Vec<OrderItemResponse>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl From<&Order> for OrderResponse {
    fn from(order: &Order) -> Self {
        Self {
            id: order.order.id,
            user_id: order.order.user_id.0,
            status: order.order.status,
            total_minor: order.order.total_minor,
            currency: order.order.currency.clone(),
            items: order
                .items
                .iter()
                .map(|item| OrderItemResponse {
                    product_id: item.product_id,
                    name: item.name.clone(),
                    quantity: item.quantity,
                    unit_price_minor: item.unit_price_minor,
                })
                .collect(),
            created_at: order.order.created_at,
            cancelled_at: order.order.cancelled_at,
        }
    }
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderResponse>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<Uuid>,
}

pub(crate) fn validate(request: &CreateOrderRequest) -> Result<Vec<OrderLine>, ApiError> {
    let mut errors = Vec::new();
    if request.items.is_empty() || request.items.len() > MAX_LINES {
        errors.push(FieldError::new(
            "items",
            format!("must hold 1 to {MAX_LINES} lines"),
        ));
    }
    let mut seen = HashSet::new();
    for (index, line) in request.items.iter().enumerate() {
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            errors.push(FieldError::new(
                &format!("items[{index}].quantity"),
                format!("must be 1 to {MAX_QUANTITY}"),
            ));
        }
        if !seen.insert(line.product_id) {
            errors.push(FieldError::new(
                &format!("items[{index}].product_id"),
                "lists a product a second time; order it once with the total quantity",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(request
        .items
        .iter()
        .map(|line| OrderLine {
            product_id: line.product_id,
            quantity: line.quantity,
        })
        .collect())
}

/// The `Idempotency-Key` header, checked: 1–255 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|key| {
        !key.is_empty() && key.len() <= MAX_KEY_CHARS && key.bytes().all(|byte| byte.is_ascii_graphic())
    });
    match key {
        Some(key) => Ok(Some(key.to_owned())),
        None => Err(ApiError::BadRequest(format!(
            "the Idempotency-Key header must be 1 to {MAX_KEY_CHARS} visible ASCII characters"
        ))),
    }
}

fn place_error(error: PlaceError) -> ApiError {
    match error {
        PlaceError::UnknownProduct(id) => ApiError::Unprocessable(format!("there is no product {id}")),
        PlaceError::OutOfStock {
            product_id,
            requested,
            available,
        } => ApiError::Conflict(format!(
            "not enough stock for product {product_id}: {requested} requested, {available} available"
        )),
        PlaceError::Amount(problem) => ApiError::Unprocessable(problem),
        PlaceError::Moving => ApiError::Busy(MOVING),
        PlaceError::Store(error) => error.into(),
    }
}

fn created(body: &serde_json::Value, replayed: bool) -> Result<Response, ApiError> {
    let id = body
        .get("id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let mut response = located(StatusCode::CREATED, &format!("/api/v1/orders/{id}"), body)?;
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Places an order: stock is checked and reserved atomically, totals are computed here, the
/// confirmation e-mail is queued with the order. With an `Idempotency-Key`, a retry (even one
/// racing the first request) gets the first answer and creates nothing.
#[utoipa::path(
    post, path = "/api/v1/orders", tag = "orders",
    request_body = CreateOrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters; remembered `idempotency_key_ttl`")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201,
        description = "Placed (or, with `Idempotent-Replayed: true`, placed by an earlier request with this key)", body = OrderResponse),
        OrderConflict, OrderUnprocessable, RetryAfter, Invalid, OrderRateLimited,
    )
)]
pub async fn create_order(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateOrderRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let placed = place_order(&state, principal.user_id, &request, key)
        .await
        .map_err(ApiError::from)?;
    created(&placed.body, placed.replayed)
}

/// An order placed by [`place_order`]: its body as the API answers it.
#[derive(Debug)]
pub struct Placed {
    /// The order, as `OrderResponse` JSON (for a replay: as first answered).
    pub body: serde_json::Value,
    /// Whether an earlier request with the same key placed it.
    pub replayed: bool,
}

impl Placed {
    /// The order's id.
    pub fn id(&self) -> &str {
        self.body
            .get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    }
}

/// Why [`place_order`] placed nothing: the API's answer, and for a shortage the product and
/// the units left (for a page to show next to that line).
#[derive(Debug)]
pub struct OrderRefused {
    /// What the API answers.
    pub error: ApiError,
    /// `(product, units available)` when stock ran short.
    pub short_of: Option<(Uuid, i64)>,
}

impl From<ApiError> for OrderRefused {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            short_of: None,
        }
    }
}

impl From<OrderRefused> for ApiError {
    fn from(refused: OrderRefused) -> Self {
        refused.error
    }
}

/// Places `request` for `user`, the one way orders are placed (the API and the checkout page):
/// validated; with an idempotency `key`, claimed first, so a retry (even one racing the first
/// request) gets the first answer and creates nothing; the products' caches forgotten whatever
/// the outcome (stock moved or was found short); counted in the order metrics.
pub async fn place_order(
    state: &AppState,
    user: UserId,
    request: &CreateOrderRequest,
    key: Option<String>,
) -> Result<Placed, OrderRefused> {
    let lines = validate(request)?;
    let order_id = match &key {
        None => Uuid::now_v7(),
        Some(key) => {
            let canonical =
                serde_json::to_vec(request).map_err(|error| ApiError::from(anyhow::Error::from(error)))?;
            let key = IdempotencyKey {
                key: key.clone(),
                request_hash: sha2::Sha256::digest(&canonical).to_vec(),
            };
            // A claim outlives any request holding it: only a crashed request's claim lapses.
            let lease = state.settings.request_timeout * 2;
            let wait = state.settings.request_timeout / 2;
            match state.orders.claim_key(user, &key, lease, wait).await {
                Ok(Claim::Fresh { order_id }) => order_id,
                Ok(Claim::Replay { body, .. }) => return Ok(Placed { body, replayed: true }),
                Err(ClaimError::Reused) => {
                    return Err(ApiError::Unprocessable(
                        "this Idempotency-Key was already used with a different request body".into(),
                    )
                    .into());
                }
                Err(ClaimError::InProgress) => {
                    return Err(ApiError::Conflict(
                        "a request with this Idempotency-Key is still being processed; retry later".into(),
                    )
                    .into());
                }
                Err(ClaimError::Moving) => return Err(ApiError::Busy(MOVING).into()),
                Err(ClaimError::Store(error)) => return Err(ApiError::from(error).into()),
            }
        }
    };
    let outcome = state
        .orders
        .place(user, order_id, &lines, key.as_deref(), |order| {
            serde_json::to_value(OrderResponse::from(order)).unwrap_or_default()
        })
        .await;
    let products: Vec<Uuid> = lines.iter().map(|line| line.product_id).collect();
    forget_products(state, products).await;
    match outcome {
        Ok(order) => {
            metrics::counter!("orders_placed_total").increment(1);
            let body = serde_json::to_value(OrderResponse::from(&order))
                .map_err(|error| ApiError::from(anyhow::Error::from(error)))?;
            Ok(Placed {
                body,
                replayed: false,
            })
        }
        Err(error) => {
            if let Some(key) = &key {
                state.orders.release_key(user, key, order_id).await;
            }
            metrics::counter!("orders_refused_total").increment(1);
            let short_of = match &error {
                PlaceError::OutOfStock {
                    product_id,
                    available,
                    ..
                } => Some((*product_id, *available)),
                _ => None,
            };
            Err(OrderRefused {
                error: place_error(error),
                short_of,
            })
        }
    }
}

/// Paging through one's orders.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOrdersQuery {
    /// Orders placed before this one (the `next_before` of the previous page).
    pub before: Option<Uuid>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// The caller's orders, newest first.
#[utoipa::path(
    get, path = "/api/v1/orders", tag = "orders",
    params(ListOrdersQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "A page; `Link: rel=next` points to the next", body = OrderPage), Invalid)
)]
pub async fn list_orders(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListOrdersQuery>,
) -> Result<Response, ApiError> {
    let limit = page_size(query.limit)?;
    let mut orders = state
        .orders
        .list(principal.user_id, query.before, limit + 1)
        .await?;
    let next_before = cut_page(&mut orders, limit, |order| order.order.id);
    let page = OrderPage {
        items: orders.iter().map(OrderResponse::from).collect(),
        next_before,
    };
    let next = next_before.map(|next| format!("/api/v1/orders?before={next}&limit={limit}"));
    Ok(page_response(page, next))
}

/// The order id in the path, and whose order it is as far as the caller may know: their own,
/// or (for an admin) anyone's. Everyone else learns nothing, not even that it exists.
async fn owner_for(state: &AppState, principal: &Principal, id: &str) -> Result<(UserId, Uuid), ApiError> {
    let id = path_uuid(id, "an order id")?;
    if principal.role == Role::Admin
        && let Some(owner) = state.orders.owner_of(id).await?
    {
        return Ok((owner, id));
    }
    Ok((principal.user_id, id))
}

/// One order: its owner's or an admin's to see; anyone else gets 404.
#[utoipa::path(
    get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = OrderResponse), NoSuchOrder)
)]
pub async fn get_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<OrderResponse>, ApiError> {
    let (owner, id) = owner_for(&state, &principal, &id).await?;
    let order = state
        .orders
        .get(owner, id)
        .await?
        .ok_or(ApiError::NotFound("no such order"))?;
    Ok(Json(OrderResponse::from(&order)))
}

/// Cancels an order once and puts its stock back (owner or admin).
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "Cancelled", body = OrderResponse), AlreadyCancelled, NotFound)
)]
pub async fn cancel_order(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<OrderResponse>, ApiError> {
    let order = cancel_for(&state, &principal, &id).await?;
    Ok(Json(OrderResponse::from(&order)))
}

/// Cancels the order `id` (the caller's own, or anyone's for an admin; anyone else gets 404),
/// shared by the API and the orders page: the stock goes back, the products' cached entries
/// are forgotten and the cancellation is counted.
pub async fn cancel_for(state: &AppState, principal: &Principal, id: &str) -> Result<Order, ApiError> {
    let (owner, id) = owner_for(state, principal, id).await?;
    let order = match state.orders.cancel(owner, id).await {
        Ok(order) => order,
        Err(CancelError::NotFound) => return Err(ApiError::NotFound("no such order")),
        Err(CancelError::AlreadyCancelled) => {
            return Err(ApiError::Conflict("the order is already cancelled".into()));
        }
        Err(CancelError::Moving) => {
            return Err(ApiError::Busy(MOVING));
        }
        Err(CancelError::Store(error)) => return Err(error.into()),
    };
    let products: Vec<Uuid> = order.items.iter().map(|item| item.product_id).collect();
    forget_products(state, products).await;
    metrics::counter!("orders_cancelled_total").increment(1);
    Ok(order)
}
