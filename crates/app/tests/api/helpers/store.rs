//! Store fixtures shared by the `store_*` tests: products, orders and events.

use serde_json::{Value, json};

use super::{SignedIn, TestApp, json_body};

/// `POST /api/v1/products` as `admin`, asserting a 201; returns the product.
pub async fn create_product(app: &TestApp, admin: &SignedIn, body: Value) -> Value {
    let response = app
        .post_json_with_token("/api/v1/products", &admin.access_token, &body)
        .await;
    json_body(response, 201).await
}

/// `create_product` with a name, a price in euro cents and a stock; returns the product's id.
pub async fn create_product_id(
    app: &TestApp,
    admin: &SignedIn,
    name: &str,
    price_minor: i64,
    stock: i64,
) -> String {
    let created = create_product(
        app,
        admin,
        json!({"name": name, "price_minor": price_minor, "currency": "EUR", "stock": stock}),
    )
    .await;
    created["id"].as_str().expect("id").to_owned()
}

/// `GET /api/v1/products/{id}`, asserting a 200.
pub async fn product(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/api/v1/products/{id}")).await
}

/// `POST /api/v1/orders` with `items` as `user`, with an `Idempotency-Key` when given.
pub async fn order(app: &TestApp, user: &SignedIn, items: Value, key: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(&user.access_token)
        .json(&json!({ "items": items }));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("order")
}

/// `POST /api/v1/orders/{order_id}/cancel` as `who`.
pub async fn cancel_order(app: &TestApp, who: &SignedIn, order_id: &str) -> reqwest::Response {
    app.post_with_token(&format!("/api/v1/orders/{order_id}/cancel"), &who.access_token)
        .await
}

/// A batch of `count` events of type `kind`.
pub fn events(count: usize, kind: &str) -> Value {
    let now = chrono::Utc::now();
    let events: Vec<Value> = (0..count)
        .map(|index| {
            json!({
                "type": kind,
                "timestamp": (now - chrono::Duration::milliseconds(index as i64)).to_rfc3339(),
                "properties": {"index": index, "path": "/products"},
            })
        })
        .collect();
    json!({ "events": events })
}

/// `POST /api/v1/events` with `batch` as `user`.
pub async fn post_events(app: &TestApp, user: &SignedIn, batch: &Value) -> reqwest::Response {
    app.post_json_with_token("/api/v1/events", &user.access_token, batch)
        .await
}

/// How most order tests begin: an admin (`admin@example.org`) creates a product (`name`, a
/// price in euro cents, `stock`), then a buyer (`ann@example.org`) signs in. Returns the
/// product's id and the buyer.
pub async fn product_and_buyer(
    app: &TestApp,
    name: &str,
    price_minor: i64,
    stock: i64,
) -> (String, SignedIn) {
    let admin = app.admin("admin@example.org").await;
    let product = create_product_id(app, &admin, name, price_minor, stock).await;
    (product, app.signed_in("ann@example.org").await)
}
