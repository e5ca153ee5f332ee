//! The store: catalog (public, cached, ETags), orders (atomic stock, idempotency, privacy,
//! cancellation), sharding, events (group commit, back-pressure, durability), analytics and
//! seeding. Every test runs on both backends; on the scaled one orders and events live on two
//! shard databases.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, SignedIn, TestApp, assert_problem, header, metric_value, scaled, spawn_app, spawn_app_on,
    spawn_app_with, unique_email,
};

/// `POST /api/v1/products` as `admin`; returns the product.
async fn create_product(app: &TestApp, admin: &SignedIn, body: Value) -> Value {
    let response = app
        .client
        .post(app.url("/api/v1/products"))
        .bearer_auth(&admin.access_token)
        .json(&body)
        .send()
        .await
        .expect("create product");
    assert_eq!(response.status(), 201, "create product {body}");
    response.json().await.expect("json")
}

async fn product(app: &TestApp, id: &str) -> Value {
    let response = app
        .client
        .get(app.url(&format!("/api/v1/products/{id}")))
        .send()
        .await
        .expect("get product");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn order(app: &TestApp, user: &SignedIn, items: Value, key: Option<&str>) -> reqwest::Response {
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

/// Rows of `table` summed over every database that holds it (SQLite file, or the shards).
async fn count_rows(app: &TestApp, table: &str, filter: &str) -> i64 {
    use sqlx::Connection;
    let sql = format!("SELECT count(*) FROM {table} {filter}");
    match app
        .backend
        .iter()
        .find(|(key, _)| key == "OUTGROW_DATABASE_SHARD_URLS")
    {
        Some((_, urls)) => {
            let mut total = 0;
            for url in urls.split(',') {
                let mut connection = sqlx::PgConnection::connect(url)
                    .await
                    .expect("connect to a shard");
                total += sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone()))
                    .fetch_one(&mut connection)
                    .await
                    .expect("count");
            }
            total
        }
        None => {
            let path = app.data_dir.join("outgrow.sqlite3");
            let mut connection =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", path.display()))
                    .await
                    .expect("open the SQLite file");
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut connection)
                .await
                .expect("count")
        }
    }
}

#[tokio::test]
async fn the_catalog_is_public_cached_and_answers_304_to_a_known_etag() {
    let app = spawn_app_with(&[("OUTGROW_CATALOG_MAX_AGE", "90s")]).await;
    let admin = app.admin("admin@example.org").await;
    let created = create_product(
        &app,
        &admin,
        json!({"name": "Blue mug", "description": "Stoneware, 300 ml", "price_minor": 1250, "currency": "eur", "stock": 7}),
    )
    .await;
    assert_eq!(created["currency"], "EUR");
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/products/{id}");

    let first = app.client.get(app.url(&path)).send().await.expect("get");
    assert_eq!(first.status(), 200);
    assert_eq!(
        header(&first, "cache-control").as_deref(),
        Some("public, max-age=90")
    );
    let etag = header(&first, "etag").expect("ETag");
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong: {etag}");
    let body: Value = first.json().await.expect("json");
    assert_eq!(body["price_minor"], 1250);
    assert_eq!(body["stock"], 7);

    let revalidated = app
        .client
        .get(app.url(&path))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional get");
    assert_eq!(revalidated.status(), 304);
    assert_eq!(header(&revalidated, "etag").as_deref(), Some(etag.as_str()));
    assert!(revalidated.bytes().await.expect("body").is_empty());

    // A second read is a cache hit; an admin write invalidates (a new ETag, the new price).
    let metrics = app.metrics().await;
    assert!(
        metric_value(&metrics, r#"cache_requests_total{cache="products",result="hit"}"#) >= Some(1.0),
        "{metrics}"
    );
    let patched = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin.access_token)
        .json(&json!({"price_minor": 990, "currency": "EUR"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    let after = app
        .client
        .get(app.url(&path))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("get after the change");
    assert_eq!(after.status(), 200, "the old ETag no longer matches");
    assert_ne!(header(&after, "etag"), Some(etag));
    assert_eq!(after.json::<Value>().await.expect("json")["price_minor"], 990);

    // Listing pages are cached too, and a write retires them at once.
    let list: Value = app
        .client
        .get(app.url("/api/v1/products"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let deleted = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let list: Value = app
        .client
        .get(app.url("/api/v1/products"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"], json!([]), "the deletion retired the cached page");
    assert_problem(app.client.get(app.url(&path)).send().await.expect("get"), 404).await;
}

#[tokio::test]
async fn the_catalog_pages_by_keyset_and_filters_by_price_and_words() {
    let app = spawn_app().await;
    let admin = app.admin("admin@example.org").await;
    let names = [
        ("Red ceramic mug", 900),
        ("Blue ceramic bowl", 1500),
        ("Oak chair", 12000),
        ("Red linen scarf", 2500),
        ("Glass vase", 3000),
    ];
    for (name, price) in names {
        create_product(
            &app,
            &admin,
            json!({"name": name, "price_minor": price, "currency": "EUR", "stock": 1}),
        )
        .await;
    }
    let get = |query: &'static str| {
        let app = &app;
        async move {
            let response = app
                .client
                .get(app.url(&format!("/api/v1/products{query}")))
                .send()
                .await
                .expect("list");
            assert_eq!(response.status(), 200, "{query}");
            let link = header(&response, "link");
            let body: Value = response.json().await.expect("json");
            let names: Vec<String> = body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|item| item["name"].as_str().expect("name").to_owned())
                .collect();
            (names, body["next_after"].as_str().map(str::to_owned), link)
        }
    };
    let (page, next, link) = get("?limit=2").await;
    assert_eq!(page, ["Red ceramic mug", "Blue ceramic bowl"]);
    let next = next.expect("a next page");
    assert!(link.expect("Link").contains(&format!("after={next}")));
    let second = app
        .client
        .get(app.url(&format!("/api/v1/products?limit=2&after={next}")))
        .send()
        .await
        .expect("page 2")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(second["items"][0]["name"], "Oak chair");

    assert_eq!(get("?q=red").await.0, ["Red ceramic mug", "Red linen scarf"]);
    assert_eq!(
        get("?q=CERAMIC%20red").await.0,
        ["Red ceramic mug"],
        "every word, any case"
    );
    assert_eq!(get("?min_price=1500&max_price=3000").await.0.len(), 3);
    assert_eq!(get("?q=red&max_price=1000").await.0, ["Red ceramic mug"]);
    // Search syntax in the input is taken literally, never as SQL or FTS operators.
    assert!(get("?q=%22%20OR%201%3D1%20--").await.0.is_empty());
    assert!(get("?q=red%20OR%20oak*").await.0.is_empty());

    for bad in [
        "?limit=0",
        "?limit=101",
        "?min_price=-1",
        "?min_price=10&max_price=5",
        "?after=not-a-uuid",
        "?colour=red",
        "?min_price=cheap",
    ] {
        assert_problem(
            app.client
                .get(app.url(&format!("/api/v1/products{bad}")))
                .send()
                .await
                .expect("bad"),
            400,
        )
        .await;
    }
}

#[tokio::test]
async fn only_admins_write_the_catalog_and_bad_products_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin("admin@example.org").await;
    let user = app.signed_in("ann@example.org").await;
    let forbidden = app
        .client
        .post(app.url("/api/v1/products"))
        .bearer_auth(&user.access_token)
        .json(&json!({"name": "Mug", "price_minor": 100, "currency": "EUR", "stock": 1}))
        .send()
        .await
        .expect("post");
    assert_problem(forbidden, 403).await;
    let anonymous = app
        .post_json(
            "/api/v1/products",
            &json!({"name": "Mug", "price_minor": 100, "currency": "EUR", "stock": 1}),
        )
        .await;
    assert_problem(anonymous, 401).await;

    let long_name = "x".repeat(201);
    for bad in [
        json!({"name": "", "price_minor": 100, "currency": "EUR", "stock": 1}),
        json!({"name": long_name, "price_minor": 100, "currency": "EUR", "stock": 1}),
        json!({"name": "Mug", "price_minor": -1, "currency": "EUR", "stock": 1}),
        json!({"name": "Mug", "price_minor": 100, "currency": "EURO", "stock": 1}),
        json!({"name": "Mug", "price_minor": 100, "currency": "EUR", "stock": -5}),
        json!({"name": "Mug", "price_minor": "cheap", "currency": "EUR", "stock": 1}),
        json!({"name": "Mug", "price_minor": 100, "currency": "EUR", "stock": 1, "colour": "red"}),
        json!({"name": "Mug", "price_minor": 100, "currency": "EUR", "stock": 1, "image_id": uuid::Uuid::now_v7()}),
        json!({"price_minor": 100, "currency": "EUR", "stock": 1}),
    ] {
        let response = app
            .client
            .post(app.url("/api/v1/products"))
            .bearer_auth(&admin.access_token)
            .json(&bad)
            .send()
            .await
            .expect("post");
        assert_problem(response, 400).await;
    }
    // Injection strings are data: stored and shown as sent.
    let injection = "Robert'); DROP TABLE products;--";
    let created = create_product(
        &app,
        &admin,
        json!({"name": injection, "description": "' OR '1'='1", "price_minor": 1, "currency": "EUR", "stock": 1}),
    )
    .await;
    assert_eq!(
        product(&app, created["id"].as_str().expect("id")).await["name"],
        injection
    );
    let patch = app
        .client
        .patch(app.url(&format!(
            "/api/v1/products/{}",
            created["id"].as_str().expect("id")
        )))
        .bearer_auth(&admin.access_token)
        .json(&json!({"price_minor": 5}))
        .send()
        .await
        .expect("patch");
    assert_problem(patch, 400).await;
    let unknown = app
        .client
        .patch(app.url(&format!("/api/v1/products/{}", uuid::Uuid::now_v7())))
        .bearer_auth(&admin.access_token)
        .json(&json!({"stock": 5}))
        .send()
        .await
        .expect("patch");
    assert_problem(unknown, 404).await;
}

#[tokio::test]
async fn fifty_buyers_racing_for_the_last_ten_units_buy_exactly_ten() {
    let app = spawn_app().await;
    let admin = app.admin("admin@example.org").await;
    let created = create_product(
        &app,
        &admin,
        json!({"name": "Limited print", "price_minor": 4000, "currency": "EUR", "stock": 10}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
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
        let response = app
            .get_with_token(&format!("/api/v1/orders/{order_id}"), &buyer.access_token)
            .await;
        assert_eq!(response.status(), 200, "every 201 has its order");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["total_minor"], 4000);
        assert_eq!(body["items"][0]["quantity"], 1);
    }
    assert_eq!(count_rows(&app, "orders", "WHERE status = 'placed'").await, 10);
}

#[tokio::test]
async fn twenty_concurrent_retries_with_one_idempotency_key_place_one_order() {
    let app = spawn_app().await;
    let admin = app.admin("admin@example.org").await;
    let created = create_product(
        &app,
        &admin,
        json!({"name": "Teapot", "price_minor": 2999, "currency": "EUR", "stock": 100}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let user = app.signed_in("ann@example.org").await;
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
        .get_with_token("/api/v1/orders", &user.access_token)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "one order");

    // A later retry is marked as a replay; the same key with another body is refused.
    let replay = order(&app, &user, items.clone(), Some("checkout-7f3a")).await;
    assert_eq!(header(&replay, "idempotent-replayed").as_deref(), Some("true"));
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
async fn orders_are_private_listed_newest_first_and_cancelled_once() {
    let app = spawn_app().await;
    let admin = app.admin("admin@example.org").await;
    let mug = create_product(
        &app,
        &admin,
        json!({"name": "Mug", "price_minor": 1000, "currency": "EUR", "stock": 10}),
    )
    .await;
    let lamp = create_product(
        &app,
        &admin,
        json!({"name": "Lamp", "price_minor": 5000, "currency": "EUR", "stock": 5}),
    )
    .await;
    let (mug_id, lamp_id) = (mug["id"].as_str().expect("id"), lamp["id"].as_str().expect("id"));
    let ann = app.signed_in("ann@example.org").await;
    let bob = app.signed_in("bob@example.org").await;
    let mut ids = Vec::new();
    for quantity in 1..=3 {
        let response = order(
            &app,
            &ann,
            json!([{"product_id": mug_id, "quantity": quantity}, {"product_id": lamp_id, "quantity": 1}]),
            None,
        )
        .await;
        assert_eq!(response.status(), 201);
        let location = header(&response, "location").expect("Location");
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            location,
            format!("/api/v1/orders/{}", body["id"].as_str().expect("id"))
        );
        assert_eq!(
            body["total_minor"],
            1000 * quantity + 5000,
            "computed by the server"
        );
        assert_eq!(body["status"], "placed");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(product(&app, mug_id).await["stock"], 4);
    // Each order's confirmation was queued with it and sent.
    let mail_dir = app.data_dir.join("mail");
    let started = std::time::Instant::now();
    loop {
        let confirmed = std::fs::read_dir(&mail_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
                    .filter(|message| message.contains("Your Outgrow order"))
                    .count()
            })
            .unwrap_or(0);
        if confirmed == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{confirmed} of 3 confirmations"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let page: Value = app
        .get_with_token("/api/v1/orders?limit=2", &ann.access_token)
        .await
        .json()
        .await
        .expect("json");
    let listed: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|order| order["id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()], "newest first");
    let next = page["next_before"].as_str().expect("next page");
    let rest: Value = app
        .get_with_token(&format!("/api/v1/orders?before={next}"), &ann.access_token)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(rest["items"][0]["id"], ids[0].as_str());
    let bobs: Value = app
        .get_with_token("/api/v1/orders", &bob.access_token)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(bobs["items"], json!([]));

    let path = format!("/api/v1/orders/{}", ids[0]);
    assert_problem(app.get_with_token(&path, &bob.access_token).await, 404).await;
    assert_eq!(app.get_with_token(&path, &admin.access_token).await.status(), 200);
    assert_problem(
        app.get_with_token(
            &format!("/api/v1/orders/{}", uuid::Uuid::now_v7()),
            &ann.access_token,
        )
        .await,
        404,
    )
    .await;

    let cancel = |who: &SignedIn| {
        app.client
            .post(app.url(&format!("{path}/cancel")))
            .bearer_auth(&who.access_token)
            .send()
    };
    assert_problem(cancel(&bob).await.expect("cancel"), 404).await;
    let cancelled = cancel(&ann).await.expect("cancel");
    assert_eq!(cancelled.status(), 200);
    let cancelled: Value = cancelled.json().await.expect("json");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["cancelled_at"].is_string());
    assert_eq!(product(&app, mug_id).await["stock"], 5, "the stock is back");
    assert_eq!(product(&app, lamp_id).await["stock"], 3);
    assert_problem(cancel(&ann).await.expect("cancel"), 409).await;
    assert_problem(cancel(&admin).await.expect("cancel"), 409).await;
    assert_eq!(product(&app, mug_id).await["stock"], 5, "and only once");
    let seen: Value = app
        .get_with_token(&path, &ann.access_token)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(seen["status"], "cancelled");
    // An admin may cancel anyone's order.
    let by_admin = cancel_as(&app, &admin, &ids[1]).await;
    assert_eq!(by_admin.status(), 200);
    assert_eq!(product(&app, lamp_id).await["stock"], 4);
}

async fn cancel_as(app: &TestApp, who: &SignedIn, order_id: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/orders/{order_id}/cancel")))
        .bearer_auth(&who.access_token)
        .send()
        .await
        .expect("cancel")
}

#[tokio::test]
async fn bad_orders_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let admin = app.admin("admin@example.org").await;
    let eur = create_product(
        &app,
        &admin,
        json!({"name": "Mug", "price_minor": 1000, "currency": "EUR", "stock": 3}),
    )
    .await;
    let usd = create_product(
        &app,
        &admin,
        json!({"name": "Cap", "price_minor": 1500, "currency": "USD", "stock": 3}),
    )
    .await;
    let (eur, usd) = (eur["id"].as_str().expect("id"), usd["id"].as_str().expect("id"));
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

/// A batch of `count` events.
fn events(count: usize, kind: &str) -> Value {
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

async fn post_events(app: &TestApp, user: &SignedIn, batch: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/events"))
        .bearer_auth(&user.access_token)
        .json(batch)
        .send()
        .await
        .expect("post events")
}

#[tokio::test]
async fn a_hundred_thousand_events_in_batches_are_all_stored_and_rolled_up() {
    let app = spawn_app_with(&[("OUTGROW_ANALYTICS_ROLLUP_SCHEDULE", "*/1 * * * * *")]).await;
    let users = join_all((0..4).map(|index| app.signed_in_quick(index))).await;
    let batch = events(500, "page.viewed");
    let started = std::time::Instant::now();
    // 200 requests of 500, 16 at a time.
    let mut acknowledged = 0;
    for round in 0..(200 / 16 + 1) {
        let requests = (0..16)
            .map(|slot| round * 16 + slot)
            .filter(|index| *index < 200)
            .map(|index| post_events(&app, &users[index % users.len()], &batch));
        for response in join_all(requests).await {
            assert_eq!(response.status(), 201);
            acknowledged += response.json::<Value>().await.expect("json")["stored"]
                .as_i64()
                .expect("stored");
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(acknowledged, 100_000);
    assert_eq!(
        count_rows(&app, "events", "").await,
        100_000,
        "every acknowledged event is stored"
    );
    eprintln!(
        "100000 events in {:.1} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        100_000.0 / elapsed.as_secs_f64()
    );
    // Batches were coalesced: fewer writes than requests.
    let metrics = app.metrics().await;
    let batches: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("events_batch_rows_count"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        batches > 0.0 && batches <= 200.0,
        "{batches} batches for 200 requests"
    );

    // The roll-up counts them, gathering across every shard.
    let admin = app.admin("admin@example.org").await;
    let mut total = 0;
    for _ in 0..100 {
        let report: Value = app
            .get_with_token("/api/v1/admin/analytics?hours=2", &admin.access_token)
            .await
            .json()
            .await
            .expect("json");
        total = report["events_per_hour"]
            .as_array()
            .expect("counts")
            .iter()
            .filter(|row| row["type"] == "page.viewed")
            .map(|row| row["count"].as_i64().unwrap_or(0))
            .sum::<i64>();
        if total == 100_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(total, 100_000);
    assert_problem(
        app.get_with_token("/api/v1/admin/analytics", &users[0].access_token)
            .await,
        403,
    )
    .await;
}

#[tokio::test]
async fn bad_event_batches_are_refused_whole() {
    let app = spawn_app().await;
    let user = app.signed_in("ann@example.org").await;
    let now = chrono::Utc::now();
    let big = "x".repeat(3000);
    for bad in [
        json!({"events": []}),
        events(501, "page.viewed"),
        json!({"events": [{"type": "Page Viewed", "timestamp": now.to_rfc3339()}]}),
        json!({"events": [{"type": "", "timestamp": now.to_rfc3339()}]}),
        json!({"events": [{"type": "a", "timestamp": "yesterday"}]}),
        json!({"events": [{"type": "a", "timestamp": (now - chrono::Duration::days(30)).to_rfc3339()}]}),
        json!({"events": [{"type": "a", "timestamp": (now + chrono::Duration::days(1)).to_rfc3339()}]}),
        json!({"events": [{"type": "a", "timestamp": now.to_rfc3339(), "properties": [1, 2]}]}),
        json!({"events": [{"type": "a", "timestamp": now.to_rfc3339(), "properties": {"big": big}}]}),
        json!({"events": [{"type": "a", "timestamp": now.to_rfc3339(), "extra": 1}]}),
    ] {
        assert_problem(post_events(&app, &user, &bad).await, 400).await;
    }
    assert_eq!(count_rows(&app, "events", "").await, 0);
    assert_problem(app.post_json("/api/v1/events", &events(1, "a")).await, 401).await;
}

#[tokio::test]
async fn a_full_event_queue_answers_503_and_loses_nothing_it_acknowledged() {
    // Room for one request at a time: concurrent requests find the queue full.
    let app = spawn_app_with(&[("OUTGROW_EVENTS_QUEUE_CAPACITY", "500")]).await;
    let user = app.signed_in("ann@example.org").await;
    let batch = events(500, "product.viewed");
    let responses = join_all((0..30).map(|_| post_events(&app, &user, &batch))).await;
    let mut stored = 0;
    let mut refused = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => {
                stored += response.json::<Value>().await.expect("json")["stored"]
                    .as_i64()
                    .expect("n")
            }
            503 => {
                assert_eq!(header(&response, "retry-after").as_deref(), Some("1"));
                let problem = assert_problem(response, 503).await;
                assert!(
                    problem["detail"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("queue is full")
                );
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0, "the queue filled up");
    assert!(stored > 0);
    assert_eq!(
        count_rows(&app, "events", "").await,
        stored,
        "stored = acknowledged"
    );
    assert!(
        metric_value(
            &app.metrics().await,
            r#"events_rejected_total{reason="queue_full"}"#
        ) >= Some(500.0)
    );
}

#[tokio::test]
async fn acknowledged_events_survive_a_kill_9_mid_load() {
    let mut app = spawn_app().await;
    let user = app.signed_in("ann@example.org").await;
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let batch = std::sync::Arc::new(events(200, "cart.updated"));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/v1/events"),
            user.access_token.clone(),
        );
        let (acknowledged, batch) = (acknowledged.clone(), batch.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Ok(response) = client.post(&url).bearer_auth(&token).json(&*batch).send().await else {
                    return;
                };
                if response.status() == 201 {
                    acknowledged.fetch_add(200, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = nix::unistd::Pid::from_raw(app.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("SIGKILL");
    let _ = app.child.wait();
    for sender in senders {
        let _ = sender.await;
    }
    let acknowledged = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
    assert!(acknowledged > 0, "load was running");
    let stored = count_rows(&app, "events", "").await;
    assert!(
        stored >= acknowledged,
        "{stored} stored, {acknowledged} acknowledged before the kill"
    );
    // Whole batches only: a batch commits or not at all.
    assert_eq!(stored % 200, 0);
    // And the server comes back on the same data.
    let again = spawn_app_on(&app.data_dir.clone(), &app.backend.clone(), &[]).await;
    assert_eq!(
        again
            .get_with_token("/api/v1/me", &user.access_token)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn sigterm_writes_every_queued_event_before_the_pools_close() {
    let mut app = spawn_app().await;
    let user = app.signed_in("ann@example.org").await;
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let batch = std::sync::Arc::new(events(250, "search.performed"));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/v1/events"),
            user.access_token.clone(),
        );
        let (acknowledged, batch) = (acknowledged.clone(), batch.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Ok(response) = client.post(&url).bearer_auth(&token).json(&*batch).send().await else {
                    return;
                };
                match response.status().as_u16() {
                    201 => {
                        acknowledged.fetch_add(250, std::sync::atomic::Ordering::SeqCst);
                    }
                    503 => return,
                    other => panic!("unexpected status {other} while draining"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    app.terminate();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = app.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "a clean exit: {status:?}");
    for sender in senders {
        sender.await.expect("no unexpected status");
    }
    let acknowledged = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
    assert!(acknowledged > 0);
    assert_eq!(
        count_rows(&app, "events", "").await,
        acknowledged,
        "stored = acknowledged"
    );
}

#[tokio::test]
async fn seeding_fills_users_products_and_orders_at_a_reported_rate() {
    let app = spawn_app().await;
    let output = app
        .command()
        .args([
            "seed",
            "--users",
            "300",
            "--products",
            "40",
            "--orders",
            "3000",
            "--batch",
            "1000",
        ])
        .output()
        .expect("run seed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("rows/s"), "{stdout}");
    assert_eq!(count_rows(&app, "orders", "").await, 3000);
    let email = stdout
        .split_whitespace()
        .find(|word| word.starts_with("seed-") && word.ends_with("@example.test"))
        .expect("a seeded e-mail in the output");
    let user = app.sign_in(email, "seeded-password").await;
    let page: Value = app
        .get_with_token("/api/v1/orders?limit=100", &user.access_token)
        .await
        .json()
        .await
        .expect("json");
    // 3,000 orders over 300 buyers: about ten each, read back from their shard.
    assert!(!page["items"].as_array().expect("items").is_empty(), "{page}");
    let units = count_rows(&app, "order_items", "").await;
    // The seed wrote the stock on the primary; a listing is read from a replica and then cached
    // for up to `cache_catalog_page_ttl` (10 s): a replica still replaying the seed's last
    // transaction can show (and the cache keep) the stock from before it for that long.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let sold = loop {
        let catalog: Value = app
            .client
            .get(app.url("/api/v1/products?limit=100"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert_eq!(catalog["items"].as_array().map(Vec::len), Some(40));
        let sold: i64 = catalog["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| 1_000_000_000 - item["stock"].as_i64().expect("stock"))
            .sum();
        if sold >= units || std::time::Instant::now() > deadline {
            break sold;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        sold >= units,
        "stock went down by what was sold: {sold} < {units}"
    );
}

impl TestApp {
    /// Registers and signs in user number `index` (a unique address per test run).
    pub async fn signed_in_quick(&self, index: usize) -> SignedIn {
        let email = unique_email(&format!("buyer{index}"));
        let registered = self.register(&email, PASSWORD, "Buyer").await;
        assert_eq!(registered.status(), 201, "register {email}");
        self.sign_in(&email, PASSWORD).await
    }
}

#[tokio::test]
async fn scaled_only_orders_land_on_the_shard_of_their_bucket_and_survive_a_bucket_move() {
    if !scaled() {
        return;
    }
    let app = spawn_app_with(&[("OUTGROW_SHARD_MAP_REFRESH", "200ms")]).await;
    let admin = app.admin("admin@example.org").await;
    let created = create_product(
        &app,
        &admin,
        json!({"name": "Mug", "price_minor": 1000, "currency": "EUR", "stock": 100}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let user = app.signed_in("ann@example.org").await;
    let mut placed = Vec::new();
    for _ in 0..5 {
        let response = order(&app, &user, json!([{"product_id": id, "quantity": 1}]), None).await;
        assert_eq!(response.status(), 201);
        placed.push(
            response.json::<Value>().await.expect("json")["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let shard_urls: Vec<String> = app
        .backend
        .iter()
        .find(|(key, _)| key == "OUTGROW_DATABASE_SHARD_URLS")
        .expect("shards")
        .1
        .split(',')
        .map(str::to_owned)
        .collect();
    let show = app
        .command()
        .args(["shards", "show", "--user", &user.id])
        .output()
        .expect("shards show");
    let shown = String::from_utf8_lossy(&show.stdout).to_string();
    assert!(show.status.success(), "{shown}");
    assert!(
        shown.contains("shard-0") && shown.contains("512 bucket(s)"),
        "{shown}"
    );
    let line = shown
        .lines()
        .find(|line| line.starts_with("user "))
        .expect("the user's line");
    let bucket: u16 = line
        .split("bucket ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|bucket| bucket.parse().ok())
        .expect("bucket");
    let home: usize = if line.ends_with("shard-0") { 0 } else { 1 };
    let on = |shard: usize| {
        let url = shard_urls[shard].clone();
        let user = user.id.clone();
        async move {
            use sqlx::Connection;
            let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect");
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM orders WHERE user_id = $1::uuid")
                .bind(user)
                .fetch_one(&mut connection)
                .await
                .expect("count")
        }
    };
    assert_eq!(on(home).await, 5, "all on the shard of bucket {bucket}");
    assert_eq!(on(1 - home).await, 0);

    let moved = app
        .command()
        .args([
            "shards",
            "move",
            "--bucket",
            &bucket.to_string(),
            "--to",
            &(1 - home).to_string(),
            "--settle",
            "1s",
        ])
        .output()
        .expect("shards move");
    assert!(
        moved.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&moved.stdout),
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(String::from_utf8_lossy(&moved.stdout).contains("5 orders"));
    assert_eq!(on(home).await, 0, "deleted from the old shard");
    assert_eq!(on(1 - home).await, 5, "copied to the new one");
    // The server routes by the new map: every order is still readable, new ones land there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for order_id in &placed {
        let response = app
            .get_with_token(&format!("/api/v1/orders/{order_id}"), &user.access_token)
            .await;
        assert_eq!(response.status(), 200);
    }
    let response = order(&app, &user, json!([{"product_id": id, "quantity": 1}]), None).await;
    assert_eq!(response.status(), 201);
    assert_eq!(on(1 - home).await, 6);
    let cancelled = cancel_as(&app, &user, &placed[0]).await;
    assert_eq!(cancelled.status(), 200);
}

#[tokio::test]
async fn scaled_only_a_reservation_whose_order_never_reached_its_shard_is_released() {
    if !scaled() {
        return;
    }
    use sqlx::Connection;
    let app = spawn_app_with(&[
        ("OUTGROW_REQUEST_TIMEOUT", "2s"),
        ("OUTGROW_ORDER_RECONCILE_AFTER", "3s"),
        ("OUTGROW_DATABASE_ACQUIRE_TIMEOUT", "1s"),
        ("OUTGROW_JOB_POLL_INTERVAL", "200ms"),
    ])
    .await;
    let admin = app.admin("admin@example.org").await;
    let created = create_product(
        &app,
        &admin,
        json!({"name": "Mug", "price_minor": 1000, "currency": "EUR", "stock": 10}),
    )
    .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let user = app.signed_in("ann@example.org").await;
    let primary = &app
        .backend
        .iter()
        .find(|(key, _)| key == "OUTGROW_DATABASE_URL")
        .expect("primary")
        .1;
    let shards: Vec<String> = app
        .backend
        .iter()
        .find(|(key, _)| key == "OUTGROW_DATABASE_SHARD_URLS")
        .expect("shards")
        .1
        .split(',')
        .map(str::to_owned)
        .collect();
    // Both shards refuse connections: the stock is reserved on the primary, the order cannot
    // be written, and the request fails without taking the stock for good.
    let mut admin_connection = sqlx::PgConnection::connect(primary).await.expect("connect");
    let names: Vec<String> = shards
        .iter()
        .map(|url| url.rsplit('/').next().expect("database").to_owned())
        .collect();
    for name in &names {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
        )))
        .execute(&mut admin_connection)
        .await
        .expect("close the shard");
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut admin_connection)
            .await
            .expect("drop its connections");
    }
    let refused = order(&app, &user, json!([{"product_id": id, "quantity": 4}]), None).await;
    // A shard that refuses connections is unavailable (503 + Retry-After), not an error of ours.
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("1"));
    assert_problem(refused, 503).await;
    for name in &names {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"
        )))
        .execute(&mut admin_connection)
        .await
        .expect("reopen the shard");
    }
    // The reconciler settles it: the order does not exist, so the 4 units come back.
    let mut stock = Value::Null;
    for _ in 0..100 {
        let current: Value = app
            .client
            .get(app.url(&format!("/api/v1/products/{id}")))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        stock = current["stock"].clone();
        if stock == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stock, 10, "the reservation was released");
    assert_eq!(count_rows(&app, "orders", "WHERE status = 'placed'").await, 0);
    // And ordering works again.
    let placed = order(&app, &user, json!([{"product_id": id, "quantity": 4}]), None).await;
    assert_eq!(placed.status(), 201);
}

#[tokio::test]
async fn a_data_export_holds_the_users_orders() {
    let app = spawn_app().await;
    let admin = app.admin("admin@example.org").await;
    let created = create_product(
        &app,
        &admin,
        json!({"name": "Vase", "price_minor": 3100, "currency": "EUR", "stock": 2}),
    )
    .await;
    let user = app.signed_in("ann@example.org").await;
    let placed: Value = order(
        &app,
        &user,
        json!([{"product_id": created["id"], "quantity": 2}]),
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    let requested = app
        .client
        .post(app.url("/api/v1/exports"))
        .bearer_auth(&user.access_token)
        .json(&json!({"format": "json"}))
        .send()
        .await
        .expect("export");
    assert_eq!(requested.status(), 202);
    let location = header(&requested, "location").expect("Location");
    let started = std::time::Instant::now();
    let link = loop {
        let status: Value = app
            .get_with_token(&location, &user.access_token)
            .await
            .json()
            .await
            .expect("json");
        if let Some(link) = status["download_url"].as_str() {
            break link.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never ready: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let document: Value = app
        .client
        .get(&link)
        .send()
        .await
        .expect("download")
        .json()
        .await
        .expect("json");
    assert_eq!(document["orders"][0]["id"], placed["id"]);
    assert_eq!(document["orders"][0]["items"][0]["name"], "Vase");
    assert_eq!(document["orders"][0]["total_minor"], 6200);
}
