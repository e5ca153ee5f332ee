//! The cart and checkout. The cart is the browser's ([`cookie`]): adding to it changes no
//! server state, so it needs no account and no token — the forms still pass the guard's
//! cross-site check when they carry the session cookie. Checkout places the order through
//! the API's own [`place_order`], with the `Idempotency-Key` the cart page put in the form:
//! a double click or a resubmitted form posts the same key and the same lines, and gets the
//! first order back instead of a second one.

pub mod cookie;

use std::collections::BTreeMap;

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use self::cookie::{Cart, MAX_QUANTITY};
use super::{
    csrf,
    error::PageError,
    page::{Audience, Layout, money, render, see_other},
    visitor::{SignedIn, Visitor},
};
use crate::{
    caches,
    http::{
        error::ApiError,
        orders::{CreateOrderRequest, OrderLineRequest, place_order},
    },
    state::AppState,
};

/// One line as the cart page shows it.
#[derive(Debug)]
struct LineView {
    id: Uuid,
    name: String,
    quantity: u32,
    unit_minor: i64,
    currency: String,
    unit_price: String,
    total: String,
    /// What is wrong with the line (not enough stock), shown next to it.
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "cart.html")]
struct CartPage {
    layout: Layout,
    lines: Vec<LineView>,
    /// The total per currency (`12.50 EUR`).
    totals: Vec<String>,
    /// Lines dropped because their product is gone.
    dropped: usize,
    /// A problem with the whole cart (shown above it).
    problem: Option<String>,
    /// The checkout form's key: a new one per render.
    idempotency_key: String,
}

/// What went wrong at checkout, for the page to show.
#[derive(Debug, Default)]
struct Refusal {
    problem: Option<String>,
    /// The product that ran short and the units left.
    short_of: Option<(Uuid, i64)>,
}

/// Renders the cart `cart` for `visitor` with `status`.
async fn render_cart(
    state: &AppState,
    headers: &HeaderMap,
    visitor: Visitor,
    cart: &Cart,
    refusal: Refusal,
    status: StatusCode,
) -> Result<Response, PageError> {
    let mut lines = Vec::with_capacity(cart.lines().len());
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    let mut dropped = 0;
    for &(id, quantity) in cart.lines() {
        let Some(product) = caches::cached_product(state, id).await.map_err(ApiError::from)? else {
            dropped += 1;
            continue;
        };
        let line_minor = product.price_minor.saturating_mul(i64::from(quantity));
        *totals.entry(product.currency.clone()).or_default() += line_minor;
        let error = match refusal.short_of {
            Some((short, available)) if short == id => Some(shortage(available)),
            _ if i64::from(quantity) > product.stock => Some(shortage(product.stock)),
            _ => None,
        };
        lines.push(LineView {
            id,
            unit_price: money(product.price_minor, &product.currency),
            total: money(line_minor, &product.currency),
            unit_minor: product.price_minor,
            currency: product.currency,
            name: product.name,
            quantity,
            error,
        });
    }
    let csrf = visitor
        .principal()
        .map(|principal| csrf::token(state, principal.session_id.as_bytes()))
        .unwrap_or_default();
    let page = CartPage {
        layout: Layout {
            visitor,
            csrf,
            ..Layout::public("Cart", "cart")
        },
        totals: totals
            .iter()
            .map(|(currency, minor)| money(*minor, currency))
            .collect(),
        lines,
        dropped,
        problem: refusal.problem,
        idempotency_key: Uuid::now_v7().to_string(),
    };
    let mut response = render(&page, Audience::Private, headers)?;
    if status != StatusCode::OK {
        *response.status_mut() = status;
    }
    Ok(response)
}

fn shortage(available: i64) -> String {
    match available {
        ..=0 => "Out of stock: remove it to check out.".to_owned(),
        1 => "Only 1 left.".to_owned(),
        left => format!("Only {left} left."),
    }
}

/// `GET /cart`.
pub async fn show_cart(
    State(state): State<AppState>,
    headers: HeaderMap,
    visitor: Visitor,
) -> Result<Response, PageError> {
    let cart = Cart::from_headers(&headers);
    render_cart(
        &state,
        &headers,
        visitor,
        &cart,
        Refusal::default(),
        StatusCode::OK,
    )
    .await
}

/// The add/update/remove form.
#[derive(Debug, Deserialize)]
pub struct CartForm {
    product_id: String,
    #[serde(default)]
    quantity: String,
    action: String,
}

/// `POST /cart`: changes one line of the cookie, then shows the cart.
pub async fn update_cart(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CartForm>,
) -> Result<Response, PageError> {
    let bad = || PageError::BadRequest("This cart form is malformed.".to_owned());
    let id = Uuid::try_parse(form.product_id.trim()).map_err(|_| bad())?;
    let quantity = || {
        form.quantity
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|quantity| *quantity <= MAX_QUANTITY)
            .ok_or_else(|| {
                PageError::BadRequest(format!("A quantity is a whole number from 0 to {MAX_QUANTITY}."))
            })
    };
    let mut cart = Cart::from_headers(&headers);
    match form.action.as_str() {
        "add" => cart.add(id, quantity()?.max(1)),
        "set" => cart.set(id, quantity()?),
        "remove" => cart.remove(id),
        _ => return Err(bad()),
    }
    let mut response = see_other("/cart");
    response
        .headers_mut()
        .append(header::SET_COOKIE, cart.set_cookie(state.settings.secure_cookies));
    Ok(response)
}

/// The checkout form.
#[derive(Debug, Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    idempotency_key: String,
}

/// `POST /checkout`: the cart becomes an order (once per key), then "Your orders".
pub async fn check_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    SignedIn(principal): SignedIn,
    Form(form): Form<CheckoutForm>,
) -> Result<Response, PageError> {
    csrf::check(&state, principal.session_id.as_bytes(), &form.csrf)?;
    let key = form.idempotency_key.trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(PageError::BadRequest(
            "This checkout form is malformed.".to_owned(),
        ));
    }
    let cart = Cart::from_headers(&headers);
    let visitor = Visitor::SignedIn(principal.clone());
    if cart.is_empty() {
        let refusal = Refusal {
            problem: Some("Your cart is empty.".to_owned()),
            short_of: None,
        };
        return render_cart(&state, &headers, visitor, &cart, refusal, StatusCode::BAD_REQUEST).await;
    }
    let request = CreateOrderRequest {
        items: cart
            .lines()
            .iter()
            .map(|&(product_id, quantity)| OrderLineRequest { product_id, quantity })
            .collect(),
    };
    match place_order(&state, principal.user_id, &request, Some(key.to_owned())).await {
        Ok(placed) => {
            let mut response = see_other(&format!("/account/orders?placed={}", placed.id()));
            response.headers_mut().append(
                header::SET_COOKIE,
                Cart::default().set_cookie(state.settings.secure_cookies),
            );
            Ok(response)
        }
        Err(refused) => {
            let (status, problem) = match &refused.error {
                ApiError::Conflict(_) if refused.short_of.is_some() => (
                    StatusCode::CONFLICT,
                    "Not enough stock for a line below; change it and check out again.".to_owned(),
                ),
                ApiError::Conflict(text) | ApiError::Unprocessable(text) | ApiError::BadRequest(text) => {
                    (StatusCode::CONFLICT, text.clone())
                }
                ApiError::Validation(errors) => (
                    StatusCode::BAD_REQUEST,
                    errors
                        .iter()
                        .map(|error| error.message.clone())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                _ => return Err(refused.error.into()),
            };
            let refusal = Refusal {
                problem: Some(problem),
                short_of: refused.short_of,
            };
            render_cart(&state, &headers, visitor, &cart, refusal, status)
                .await
                .map(IntoResponse::into_response)
        }
    }
}
