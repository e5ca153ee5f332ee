//! The visitor's orders, newest first a page at a time (the orders store's keyset paging, as
//! `GET /api/v1/orders` reads it), and the form that cancels one (the API's cancel: stock back,
//! cached products forgotten, counted).

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use outgrow_domain::OrderStatus;
use serde::Deserialize;
use uuid::Uuid;

use super::{CsrfForm, PageForm, account_layout, day};
use crate::{
    http::web::{
        csrf,
        error::PageError,
        page::{Audience, Layout, money, render, see_other},
        visitor::SignedIn,
    },
    http::{error::ApiError, orders::cancel_for, paging::cut_page},
    state::AppState,
    store::orders::Order,
};

/// Orders per page.
const PAGE_SIZE: u32 = 10;

/// One line of an order as the page shows it.
#[derive(Debug)]
pub struct LineView {
    pub name: String,
    pub quantity: i32,
    /// The unit price it was sold at, `12.50 EUR`.
    pub price: String,
}

/// An order as the page shows it.
#[derive(Debug)]
pub struct OrderView {
    pub id: Uuid,
    /// `2 December 2026`.
    pub date: String,
    /// For `<time datetime>`.
    pub timestamp: String,
    /// `placed`, `cancelled`, …
    pub status: &'static str,
    pub lines: Vec<LineView>,
    pub total: String,
    /// Whether the "Cancel order" form is shown.
    pub cancellable: bool,
}

impl From<&Order> for OrderView {
    fn from(order: &Order) -> Self {
        let currency = &order.order.currency;
        Self {
            id: order.order.id,
            date: day(order.order.created_at),
            timestamp: order.order.created_at.to_rfc3339(),
            status: order.order.status.as_str(),
            lines: order
                .items
                .iter()
                .map(|item| LineView {
                    name: item.name.clone(),
                    quantity: item.quantity,
                    price: money(item.unit_price_minor, currency),
                })
                .collect(),
            total: money(order.order.total_minor, currency),
            cancellable: order.order.status == OrderStatus::Placed,
        }
    }
}

#[derive(Template)]
#[template(path = "account/orders.html")]
struct OrdersPage {
    layout: Layout,
    orders: Vec<OrderView>,
    /// The next (older) page's URL, if there is one.
    next: Option<String>,
}

/// The orders page's query string: paging, and the flags a redirect leaves (their values are
/// never shown: each flag is a fixed sentence).
#[derive(Debug, Default, Deserialize)]
pub struct OrdersQuery {
    /// Orders placed before this one.
    pub before: Option<Uuid>,
    /// Set by checkout.
    pub placed: Option<String>,
    /// Set by a cancel.
    pub cancelled: Option<String>,
}

/// `GET /account/orders?before=`: the visitor's orders, newest first.
pub async fn show_orders(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let Query(query) = Query::<OrdersQuery>::try_from_uri(&uri)
        .map_err(|_| PageError::BadRequest("This orders link is malformed.".to_owned()))?;
    let mut orders = state
        .orders
        .list(principal.user_id, query.before, PAGE_SIZE + 1)
        .await
        .map_err(ApiError::from)?;
    let next_before = cut_page(&mut orders, PAGE_SIZE, |order| order.order.id);
    let notice = if query.placed.is_some() {
        Some("Order placed. A confirmation e-mail is on its way.")
    } else if query.cancelled.is_some() {
        Some("Order cancelled")
    } else {
        None
    };
    let page = OrdersPage {
        layout: account_layout(&state, &principal, "Your orders", notice),
        orders: orders.iter().map(OrderView::from).collect(),
        next: next_before.map(|before| format!("/account/orders?before={before}")),
    };
    render(&page, Audience::Private, &headers)
}

/// `POST /account/orders/{id}/cancel`: cancels the order as `POST /api/v1/orders/{id}/cancel`
/// does. Someone else's order (or no order) is a 404 page: nothing tells them it exists.
pub async fn cancel_order(
    State(state): State<AppState>,
    SignedIn(principal): SignedIn,
    Path(id): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> Result<Response, PageError> {
    csrf::check(&state, principal.session_id.as_bytes(), &form.csrf)?;
    match cancel_for(&state, &principal, &id).await {
        Ok(order) => Ok(see_other(&format!(
            "/account/orders?cancelled={}",
            order.order.id
        ))),
        Err(ApiError::NotFound(_) | ApiError::Validation(_) | ApiError::BadRequest(_)) => {
            Err(PageError::NotFound("You have no such order."))
        }
        Err(ApiError::Conflict(_)) => Err(PageError::BadRequest(
            "This order is already cancelled.".to_owned(),
        )),
        Err(other) => Err(other.into()),
    }
}
