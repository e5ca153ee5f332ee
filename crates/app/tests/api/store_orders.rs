//! Placing orders: atomic stock under a race, idempotency keys, refusals with their reason,
//! and the data export that holds them. Runs on both backends; on the scaled one orders live
//! on two shard databases.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn fifty_buyers_racing_for_the_last_ten_units_buy_exactly_ten() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.org").await;
    let id = create_product_id(&app, &admin, "Limited print", 4000, 10).await;
    let buyers = join_all((0..50).map(|index| app.signed_in_quick(index))).await;

    let responses = join_all(
        buyers
            .iter()
            .map(|buyer| order(&app, buyer, json!([{"product_id": id, "quantity": 1}]), None)),
    )
    .await;
    let mut placed = Vec::new();
    let mut statuses = Vec::new();
    for (buyer, response) in buyers.iter().zip(responses) {
        let status = response.status().as_u16();
        statuses.push(status);
        if status == 201 {
            let body: Value = response.json().await.expect("json");
            placed.push((buyer.clone(), body["id"].as_str().expect("id").to_owned()));
        } else {
            assert_eq!(status, 409, "the losers are told the stock ran out");
        }
    }
    assert_eq!(placed.len(), 10, "{statuses:?}");
    assert_eq!(
        product(&app, &id).await["stock"],
        0,
        "never negative, never oversold"
    );
    for (buyer, order_id) in &placed {
        let body = app
            .get_json_with_token(&format!("/api/v1/orders/{order_id}"), &buyer.access_token)
            .await;
        assert_eq!(body["total_minor"], 4000);
        assert_eq!(body["items"][0]["quantity"], 1);
    }
    assert_eq!(count_rows(&app, "orders", "WHERE status = 'placed'").await, 10);
}

#[tokio::test]
async fn twenty_concurrent_retries_with_one_idempotency_key_place_one_order() {
    let app = TestApp::spawn().await;
    let (id, user) = product_and_buyer(&app, "Teapot", 2999, 100).await;
    let items = json!([{"product_id": id, "quantity": 2}]);

    let responses = join_all((0..20).map(|_| order(&app, &user, items.clone(), Some("checkout-7f3a")))).await;
    let mut bodies = Vec::new();
    for response in responses {
        assert_eq!(response.status(), 201);
        bodies.push(response.text().await.expect("body"));
    }
    assert!(bodies.iter().all(|body| *body == bodies[0]), "identical answers");
    let first: Value = serde_json::from_str(&bodies[0]).expect("json");
    assert_eq!(first["total_minor"], 5998);
    assert_eq!(product(&app, &id).await["stock"], 98, "stock taken once");
    let mine: Value = app
        .get_json_with_token("/api/v1/orders", &user.access_token)
        .await;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "one order");

    // A later retry is marked as a replay; the same key with another body is refused.
    let replay = order(&app, &user, items.clone(), Some("checkout-7f3a")).await;
    assert_header(&replay, "idempotent-replayed", Some("true"));
    assert_eq!(replay.text().await.expect("body"), bodies[0]);
    let other = order(
        &app,
        &user,
        json!([{"product_id": id, "quantity": 3}]),
        Some("checkout-7f3a"),
    )
    .await;
    assert_problem(other, 422).await;
    // Keys belong to their user: another user's identical key is another order.
    let bob = app.signed_in("bob@example.org").await;
    let bobs = order(&app, &bob, items, Some("checkout-7f3a")).await;
    assert_eq!(bobs.status(), 201);
    assert_ne!(bobs.json::<Value>().await.expect("json")["id"], first["id"]);
    // A refused request does not burn its key: fixed, the retry goes through.
    let unknown = json!([{"product_id": uuid::Uuid::now_v7(), "quantity": 1}]);
    assert_problem(order(&app, &bob, unknown.clone(), Some("k-2")).await, 422).await;
    assert_problem(order(&app, &bob, unknown, Some("k-2")).await, 422).await;
    for bad_key in ["", "a b", &"k".repeat(256)] {
        let response = app
            .client
            .post(app.url("/api/v1/orders"))
            .bearer_auth(&bob.access_token)
            .header("Idempotency-Key", bad_key)
            .json(&json!({"items": [{"product_id": id, "quantity": 1}]}))
            .send()
            .await
            .expect("order");
        assert_problem(response, 400).await;
    }
}

#[tokio::test]
async fn a_retry_while_the_first_request_with_its_key_still_runs_gets_409() {
    // The wait for a running request is half the request timeout: 1 s.
    let app = TestApp::with_settings(&[("OUTGROW_REQUEST_TIMEOUT", "2s")]).await;
    let (id, user) = product_and_buyer(&app, "Teapot", 2999, 10).await;
    let items = json!([{"product_id": id, "quantity": 1}]);
    assert_eq!(
        order(&app, &user, items.clone(), Some("k-running"))
            .await
            .status(),
        201
    );
    // Turn the stored answer back into a claim held by a request that is still running (its
    // lease far ahead), as the first request's claim looked until it finished.
    let reopened = execute_on_shards(
        &app,
        "UPDATE idempotency_keys SET status_code = NULL, response = NULL, \
         locked_until = now() + interval '1 hour' WHERE key = 'k-running'",
        "UPDATE idempotency_keys SET status_code = NULL, response = NULL, \
         locked_until = '2999-01-01T00:00:00+00:00' WHERE key = 'k-running'",
    )
    .await;
    assert_eq!(reopened, 1);

    let started = std::time::Instant::now();
    let retry = order(&app, &user, items, Some("k-running")).await;
    let problem = assert_problem(retry, 409).await;
    assert_detail_contains(&problem, "still being processed");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "it waited for the first request"
    );
    assert_eq!(product(&app, &id).await["stock"], 9, "the retry took no stock");
    assert_eq!(count_rows(&app, "orders", "").await, 1);
}

#[tokio::test]
async fn bad_orders_are_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.org").await;
    let eur = create_product_id(&app, &admin, "Mug", 1000, 3).await;
    let usd = create_product(
        &app,
        &admin,
        json!({"name": "Cap", "price_minor": 1500, "currency": "USD", "stock": 3}),
    )
    .await;
    let (eur, usd) = (eur.as_str(), usd["id"].as_str().expect("id"));
    let user = app.signed_in("ann@example.org").await;
    let too_many: Vec<Value> = (0..51)
        .map(|_| json!({"product_id": uuid::Uuid::now_v7(), "quantity": 1}))
        .collect();
    for (items, status) in [
        (json!([]), 400),
        (Value::Array(too_many), 400),
        (json!([{"product_id": eur, "quantity": 0}]), 400),
        (json!([{"product_id": eur, "quantity": 1001}]), 400),
        (json!([{"product_id": eur, "quantity": -1}]), 400),
        (
            json!([{"product_id": eur, "quantity": 1}, {"product_id": eur, "quantity": 1}]),
            400,
        ),
        (json!([{"product_id": "mug", "quantity": 1}]), 400),
        (json!([{"product_id": eur}]), 400),
        (json!([{"product_id": uuid::Uuid::now_v7(), "quantity": 1}]), 422),
        (
            json!([{"product_id": eur, "quantity": 1}, {"product_id": usd, "quantity": 1}]),
            422,
        ),
        (json!([{"product_id": eur, "quantity": 4}]), 409),
    ] {
        let response = order(&app, &user, items.clone(), None).await;
        assert_problem(response, status).await;
    }
    assert_eq!(
        product(&app, eur).await["stock"],
        3,
        "a refused order takes nothing"
    );
    assert_eq!(product(&app, usd).await["stock"], 3);
    assert_problem(
        app.post_json(
            "/api/v1/orders",
            &json!({"items": [{"product_id": eur, "quantity": 1}]}),
        )
        .await,
        401,
    )
    .await;
}

#[tokio::test]
async fn a_data_export_holds_the_users_orders() {
    let app = TestApp::spawn().await;
    let (id, user) = product_and_buyer(&app, "Vase", 3100, 2).await;
    let placed = json_body(
        order(&app, &user, json!([{"product_id": id, "quantity": 2}]), None).await,
        201,
    )
    .await;
    let requested = app.request_export(&user.access_token, "json").await;
    assert_eq!(requested.status(), 202);
    let location = header(&requested, "location").expect("Location");
    let ready = app.wait_for_export(&location, &user.access_token).await;
    let link = ready["download_url"].as_str().expect("link");
    let document = json_body(app.client.get(link).send().await.expect("download"), 200).await;
    assert_eq!(document["orders"][0]["id"], placed["id"]);
    assert_eq!(document["orders"][0]["items"][0]["name"], "Vase");
    assert_eq!(document["orders"][0]["total_minor"], 6200);
}

/// OWASP API6 (sensitive business flows): one user flooding `POST /orders` is refused with
/// 429, the order policy's headers and `Retry-After` after `rate_limit_order`, while another
/// user still places orders.
#[tokio::test]
async fn an_order_flood_is_limited_per_user() {
    let app = TestApp::with_settings(&[("OUTGROW_RATE_LIMIT_ORDER", "3/1m")]).await;
    let (product, ann) = product_and_buyer(&app, "Flood lamp", 900, 100).await;
    let bob = app.signed_in("bob@example.org").await;
    let items = json!([{"product_id": product, "quantity": 1}]);
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..5 {
        let response = order(&app, &ann, items.clone(), None).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            refused = Some(response);
        }
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429]);
    let refused = refused.expect("a refusal");
    assert_header(&refused, "ratelimit-policy", Some("\"order\";q=3;w=60"));
    assert!(header(&refused, "retry-after").is_some());
    assert_problem(refused, 429).await;
    // Reads are not the order policy's, and Bob has his own budget.
    assert_eq!(
        app.get_status_with_token("/api/v1/orders", &ann.access_token)
            .await,
        200
    );
    assert_eq!(order(&app, &bob, items, None).await.status(), 201);
}
